"""Triton kernels of vlengine (installed as the package vlengine.kernels).

Each module registers its kernels as torch.library ops named
vlengine::<op>_triton; vlengine.ops adds autograd and chooses when to run them.
Importing this package requires triton; vlengine.ops imports it lazily and
reports why when it cannot (python -m vlengine.info).
"""
