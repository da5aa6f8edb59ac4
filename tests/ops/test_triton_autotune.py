"""The Triton kernels' autotuning: candidates for sm_80 and sm_90, a key of rounded sizes, one config when interpreted."""

import importlib
import inspect
import pkgutil

import pytest
import torch

triton = pytest.importorskip("triton")

from vlengine.kernels import _autotune  # noqa: E402


def _tuned_kernels():
    import vlengine.kernels as package

    found = {}
    for module in pkgutil.iter_modules(package.__path__):
        mod = importlib.import_module(f"vlengine.kernels.{module.name}")
        for name, value in vars(mod).items():
            if isinstance(value, _autotune.TunedKernel):
                found[f"{module.name}.{name}"] = value
    return found


TUNED = _tuned_kernels()


def _arguments(jit_fn) -> dict[str, bool]:
    """Argument name -> is a tl.constexpr, for a JITFunction or the interpreter's InterpretedFunction."""
    params = inspect.signature(jit_fn.fn).parameters
    return {name: "constexpr" in str(p.annotation) for name, p in params.items()}


def _not_specialised(jit_fn) -> set[str]:
    if hasattr(jit_fn, "params"):  # JITFunction (a GPU run)
        return {p.name for p in jit_fn.params if p.do_not_specialize}
    return set(jit_fn.kwargs.get("do_not_specialize") or ())  # InterpretedFunction


def test_every_heavy_kernel_is_tuned():
    assert set(TUNED) == {
        "mask_pixels._mask_pixels_kernel", "box_iou_batched._box_iou_batched_kernel",
        "iou_neighbourhood_mask._iou_neighbourhood_mask_kernel", "roi_align_masked._roi_align_masked_fwd_kernel",
        "roi_align_masked._roi_align_masked_bwd_kernel", "contrastive_loss._row_lse_kernel",
        "contrastive_loss._grad_rows_kernel"}


@pytest.mark.parametrize("name", sorted(TUNED))
def test_configs_for_both_architectures_set_the_kernels_block_sizes(name):
    kernel = TUNED[name]
    tuning = kernel.tuning
    constexprs = {name for name, constexpr in _arguments(kernel.fn).items() if constexpr}
    tuned_names = set(tuning.interpreter.kwargs)
    assert tuned_names and tuned_names <= constexprs
    for arch in _autotune.ARCHITECTURES:
        configs = tuning.configs(arch)
        assert len(configs) >= 2, f"{name}: nothing to choose from on {arch}"
        assert len(set(configs)) == len(configs), f"{name}: a duplicate config on {arch}"
        for config in configs:
            assert set(config.kwargs) == tuned_names  # every candidate sets every block size
            assert config.num_warps in (1, 2, 4, 8, 16) and config.num_stages >= 1


@pytest.mark.parametrize("name", sorted(TUNED))
def test_the_key_is_made_of_size_arguments_the_kernel_does_not_specialise_on(name):
    kernel = TUNED[name]
    key = kernel.tuning.key
    assert key and all(k.startswith("key_") for k in key)
    arguments, not_specialised = _arguments(kernel.fn), _not_specialised(kernel.fn)
    for k in key:
        assert arguments[k] is False, f"{name}: {k} is a constexpr (one compile per value)"
        assert k in not_specialised, f"{name}: {k} would multiply the compiled variants"


def test_kernels_that_accumulate_zero_their_output_between_timed_runs():
    assert TUNED["roi_align_masked._roi_align_masked_bwd_kernel"].tuning.reset_to_zero == ("grad_in_ptr",)
    assert TUNED["contrastive_loss._grad_rows_kernel"].tuning.reset_to_zero == ("out_ptr",)


@pytest.mark.parametrize("size, bucket", [(0, 1), (1, 1), (3, 4), (64, 64), (65, 128), (1000, 1024)])
def test_size_bucket_rounds_up_to_a_power_of_two(size, bucket):
    assert _autotune.size_bucket(size) == bucket


@pytest.mark.parametrize("capability, arch", [((8, 0), "sm_80"), ((8, 6), "sm_80"), ((8, 9), "sm_80"),
                                              ((9, 0), "sm_90"), ((10, 0), "sm_90")])
def test_architecture_of_a_capability(capability, arch):
    assert _autotune.architecture(capability) == arch


def test_interpreter_runs_one_config_so_nothing_is_benchmarked(monkeypatch):
    monkeypatch.setattr(_autotune, "interpreted", lambda: True)
    kernel = TUNED["contrastive_loss._row_lse_kernel"]
    autotuner = kernel.for_device(torch.device("cpu"))
    assert autotuner.configs == [kernel.tuning.interpreter]
    assert autotuner.keys == list(kernel.tuning.key)


@pytest.mark.parametrize("capability, arch", [((8, 0), "sm_80"), ((9, 0), "sm_90")])
def test_a_gpu_gets_the_candidates_of_its_architecture(monkeypatch, capability, arch):
    monkeypatch.setattr(_autotune, "interpreted", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    kernel = TUNED["roi_align_masked._roi_align_masked_bwd_kernel"]
    autotuner = kernel.for_device(torch.device("cuda", 0))
    assert autotuner.configs == list(kernel.tuning.configs(arch))
    assert autotuner.reset_to_zero == ["grad_in_ptr"]
    assert kernel.for_device(torch.device("cuda", 0)) is autotuner  # built once per architecture


def test_a_tuning_naming_an_argument_the_kernel_lacks_is_refused():
    tuning = _autotune.Tuning(sm_80=(), sm_90=(), key=("key_rows",), interpreter=triton.Config({}))
    fn = TUNED["mask_pixels._mask_pixels_kernel"].fn
    with pytest.raises(ValueError, match="key_rows"):
        _autotune.TunedKernel(fn, tuning)
