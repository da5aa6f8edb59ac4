"""FP16 dynamic loss scaling through DeepSpeed (needs a GPU: DeepSpeed's fp16 optimizer is CUDA-only).

Starting at a loss scale of 2^40 makes the first backward overflow in fp16, so
the first steps must be skipped (no update), the scale must come down, training
must then proceed, and no NaN/inf may reach the weights or the losses.
"""

import math

import pytest
import torch

from train_launch import ds_config, run_tiny

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="FP16 loss scaling needs a CUDA GPU")


def test_overflow_steps_are_skipped_and_the_scale_adapts(tmp_path):
    fp16 = {"enabled": True, "loss_scale": 0, "initial_scale_power": 40, "loss_scale_window": 4,
            "hysteresis": 1, "min_loss_scale": 1}
    train = {"total_steps": 16, "warmup_steps": 1, "lr": 0.01, "log_every": 16, "seed": 1,
             "output_dir": str(tmp_path / "run")}
    result, codes, output = run_tiny(tmp_path, world=1, ds=ds_config(0, 16, fp16=fp16), train=train, micro_batch=16,
                                     accelerator="cuda")
    assert codes == [0], output[-3000:]
    metrics = result["metrics"]
    assert metrics["skipped_steps"] >= 1                       # overflowing steps did not update
    assert metrics["loss_scale"] < 2.0 ** 40                   # the scale came down
    assert all(math.isfinite(x) for x in result["losses"])
    from safetensors.torch import load_file
    weights = load_file(result["exported"])
    assert all(torch.isfinite(t).all() for t in weights.values())  # no NaN reached the weights
    assert result["losses"][-1] < result["losses"][0]
