"""Crash-safe DeepSpeed checkpoints and export to one fp32 safetensors file.

DeepSpeed writes a checkpoint as a folder `<dir>/<tag>/` and then the tag into
`<dir>/latest`. A process killed while writing the folder leaves it half
written; if that tag was reused, or `latest` already named it, the run is lost.
Here every save goes to a fresh hidden folder `.partial-<tag>`, every rank's
files are flushed to disk, a manifest of file sizes is written, the folder is
renamed to `<tag>` and only then `latest` is replaced atomically. A kill at any
point leaves `latest` naming the previous complete checkpoint.

Assumes `save_dir` is one filesystem shared by all ranks (as DeepSpeed does).
"""

from __future__ import annotations

import json
import os
import shutil

import torch
import torch.distributed as dist

from vlengine.atomic import atomic_path, fsync_dir, fsync_path, write_text

MANIFEST = "vlengine_manifest.json"
LATEST = "latest"
PARTIAL_PREFIX = ".partial-"
MODEL_STATES = "mp_rank_00_model_states.pt"  # DeepSpeed's module + client state (every ZeRO stage writes it)


def tag_for_step(step: int) -> str:
    return f"step{step:09d}"


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def save_checkpoint(engine, save_dir: str, step: int, client_state: dict, keep_last: int = 2) -> str:
    """Save engine + client state as tag `step<step>`; return the tag. Called by every rank."""
    tag = tag_for_step(step)
    partial = PARTIAL_PREFIX + tag
    partial_path = os.path.join(save_dir, partial)
    if _rank() == 0:
        os.makedirs(save_dir, exist_ok=True)
        _remove_stale_partials(save_dir)
    _barrier()
    engine.save_checkpoint(save_dir, tag=partial, client_state=client_state, save_latest=False)
    # Each rank flushes the files it wrote before rank 0 declares the folder complete.
    for name in os.listdir(partial_path):
        fsync_path(os.path.join(partial_path, name))
    _barrier()
    if _rank() == 0:
        files = {name: os.path.getsize(os.path.join(partial_path, name)) for name in sorted(os.listdir(partial_path))}
        write_text(os.path.join(partial_path, MANIFEST), json.dumps({"step": step, "files": files}, indent=1))
        final_path = os.path.join(save_dir, tag)
        if os.path.exists(final_path):  # saving the same step twice: the new one wins
            shutil.rmtree(final_path)
        os.replace(partial_path, final_path)
        fsync_dir(save_dir)
        write_text(os.path.join(save_dir, LATEST), tag)
        _prune(save_dir, keep_last)
    _barrier()
    return tag


def _remove_stale_partials(save_dir: str) -> None:
    for name in os.listdir(save_dir):
        if name.startswith(PARTIAL_PREFIX):
            shutil.rmtree(os.path.join(save_dir, name), ignore_errors=True)


def _complete_tags(save_dir: str) -> list[str]:
    tags = [n for n in os.listdir(save_dir)
            if n.startswith("step") and os.path.isfile(os.path.join(save_dir, n, MANIFEST))]
    return sorted(tags)


def _prune(save_dir: str, keep_last: int) -> None:
    if keep_last <= 0:
        return
    for tag in _complete_tags(save_dir)[:-keep_last]:
        shutil.rmtree(os.path.join(save_dir, tag), ignore_errors=True)


def verify_checkpoint(save_dir: str, tag: str) -> dict:
    """Check that `<save_dir>/<tag>` is complete (manifest present, every file at its recorded size)."""
    folder = os.path.join(save_dir, tag)
    manifest_path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise RuntimeError(f"checkpoint {folder} is incomplete: no {MANIFEST} (was its save interrupted?)")
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise RuntimeError(f"checkpoint manifest {manifest_path} is corrupt: {err}") from err
    for name, size in files.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise RuntimeError(f"checkpoint {folder} is missing file {name}")
        if os.path.getsize(path) != size:
            raise RuntimeError(f"checkpoint file {path} has {os.path.getsize(path)} bytes, manifest says {size}")
    return manifest


def resolve_tag(save_dir: str, tag: str | None = None) -> str | None:
    """The tag to resume from: `tag` if given, else the one `latest` names, else None (fresh start)."""
    if tag is not None:
        verify_checkpoint(save_dir, tag)
        return tag
    latest_path = os.path.join(save_dir, LATEST)
    if not os.path.isfile(latest_path):
        if os.path.isdir(save_dir) and _complete_tags(save_dir):
            raise RuntimeError(f"{latest_path} is missing but {save_dir} holds checkpoints; pass the tag explicitly")
        return None
    with open(latest_path) as f:
        tag = f.read().strip()
    verify_checkpoint(save_dir, tag)
    return tag


def load_checkpoint(engine, save_dir: str, tag: str | None = None) -> dict | None:
    """Load the checkpoint `tag` (default: latest) into the engine; return its client state, or None
    if `save_dir` holds no checkpoint yet. Called by every rank."""
    tag = resolve_tag(save_dir, tag)
    if tag is None:
        return None
    load_path, client_state = engine.load_checkpoint(save_dir, tag=tag, load_optimizer_states=True,
                                                     load_lr_scheduler_states=True)
    if load_path is None:
        raise RuntimeError(f"DeepSpeed could not load checkpoint {os.path.join(save_dir, tag)}")
    return client_state


def export_fp32_safetensors(save_dir: str, out_path: str, tag: str | None = None,
                            metadata: dict[str, str] | None = None) -> dict[str, tuple]:
    """Write the fp32 weights of a checkpoint (any ZeRO stage, any precision) to one safetensors file.

    ZeRO keeps the fp32 master weights partitioned in the optimizer states;
    DeepSpeed's own `zero_to_fp32` reassembles them. Without ZeRO the module
    state in `mp_rank_00_model_states.pt` is the full model. The header gets
    `metadata`, by default the `export_metadata` the run kept in the checkpoint
    (architecture and model config: vlengine.models.export). Returns name -> shape.
    """
    from safetensors.torch import save_file

    tag = resolve_tag(save_dir, tag)
    if tag is None:
        raise RuntimeError(f"no checkpoint to export in {save_dir}")
    folder = os.path.join(save_dir, tag)
    from .weights_only import weights_only_loads
    with weights_only_loads():  # no unpickling of arbitrary objects, DeepSpeed's reader included
        # ZeRO-3 names its model-states files per rank (zero_pp_rank_*): it has no MODEL_STATES
        states_path = os.path.join(folder, MODEL_STATES)
        model_states = (torch.load(states_path, map_location="cpu", weights_only=True)
                        if os.path.isfile(states_path) else {})
        state = model_states.get("module") or {}
        if any("zero_pp_rank" in name and name.endswith("optim_states.pt") for name in os.listdir(folder)):
            from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
            # ZeRO-1 merges only the optimizer's parameters: frozen ones (a front-end's stem and res2) come
            # from the module state beside it, unchanged since they were loaded (ZeRO-3's module state
            # holds empty placeholders: never taken)
            kept = {name: t for name, t in state.items() if torch.is_tensor(t) and t.numel() > 0}
            state = {**kept, **get_fp32_state_dict_from_zero_checkpoint(save_dir, tag=tag)}
        if metadata is None:
            metadata = model_states.get("export_metadata") or {}
    # safetensors refuses tensors that share storage (tied embeddings): give each its own copy.
    tensors = {name: t.detach().to(torch.float32).contiguous().clone()
               for name, t in state.items() if torch.is_tensor(t) and t.is_floating_point()}
    tensors.update({name: t.detach().contiguous().clone()
                    for name, t in state.items() if torch.is_tensor(t) and not t.is_floating_point()})
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with atomic_path(out_path) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt", **metadata, "source": folder})
    return {name: tuple(t.shape) for name, t in tensors.items()}
