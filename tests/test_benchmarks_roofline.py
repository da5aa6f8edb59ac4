"""The roofline formulas (benchmarks/_roofline.py) on hand-worked shapes, the device-peak table
(vlengine/hardware.py), and the shared roofline arithmetic of benchmarks/_common.py."""

import math
import os
import sys

import pytest
import torch

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)

import _roofline as rl  # noqa: E402

from vlengine import hardware  # noqa: E402


def test_roi_align_cost_by_hand():
    # map 1x2x3x4 fp32 = 96 B; 5 RoIs + 1 masked box, 5 fp32 each = 120 B; output 5x2x2x2 = 40 values = 160 B;
    # 2x2 samples per bin, 8 FLOPs each, + 1 per bin: 40 x 33 = 1320 FLOPs
    assert rl.roi_align_cost(1, 2, 3, 4, 5, 2, 2, 1, 4, "forward") == (376, 1320)
    assert rl.roi_align_cost(1, 2, 3, 4, 5, 2, 2, 1, 4, "backward") == (376, 1320)
    assert rl.roi_align_cost(1, 2, 3, 4, 5, 2, 2, 1, 4, "both") == (752, 2640)
    assert rl.roi_align_cost(1, 2, 3, 4, 5, 2, 1, 0, 2, "forward") == (48 + 100 + 80, 40 * 9)  # fp16, 1 sample


def test_covered_pixels_is_the_union_with_the_floor_rule_and_clamping():
    boxes = torch.tensor([[0, 0, 0, 1, 1],      # rows 0-1, cols 0-1: 4 px
                          [0, 1, 1, 2.9, 2.5],  # rows 1-2, cols 1-2 (floor): 4 px, 1 shared with the first
                          [1, 0, 0, 3, 3],      # the whole 4x4 of image 1: 16 px
                          [1, 2, 2, 10, 10]])   # inside image 1's first box; clamped
    assert rl.covered_pixels(boxes, 4, 4) == 7 + 16


def test_mask_pixels_cost_by_hand():
    # in place: 23 px x 3 channels x 4 B written + 3 boxes x 20 B read; no arithmetic
    assert rl.mask_pixels_cost(3, 23, 4, boxes=3) == (336, 0)
    # out of place: the whole 2x3x4x4 fp32 tensor read and written once
    assert rl.mask_pixels_cost(3, 23, 4, boxes=3, inplace=False, images_elements=96) == (828, 0)


def test_iou_neighbourhood_cost_by_hand():
    # 2 images x 3 boxes: boxes 6 x 16 B + valid, anchors, output 6 B each = 114 B;
    # 5 pairs x 13 + 6 areas x 3 = 83 FLOPs
    assert rl.iou_neighbourhood_cost(2, 3, pairs=5) == (114, 83)
    assert rl.iou_neighbourhood_cost(2, 3) == (114, 18 * 13 + 18)  # every box against every box


def test_anchor_pairs_counts_valid_anchors_only():
    valid = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    anchors = torch.tensor([[1, 0, 1], [0, 1, 1]], dtype=torch.bool)  # image 0's third anchor is not valid
    assert rl.anchor_pairs(valid, anchors) == 2 * 1 + 3 * 2


def test_contrastive_cost_by_hand():
    # B = 4, d = 3 fp32: inputs 96 B; forward 2 B^2 d = 96 FLOPs; backward reads inputs, writes grads: 192 B, 192 FLOPs
    assert rl.contrastive_cost(4, 3, 4, "forward") == (96, 96)
    assert rl.contrastive_cost(4, 3, 4, "backward") == (192, 192)
    assert rl.contrastive_cost(4, 3, 4) == (288, 288)


def test_linear_cross_entropy_cost_by_hand():
    # x 2x3, W 5x3 fp32 = 84 B, labels 2 x 8 B; logits 2 x 2 x 3 x 5 = 60 FLOPs
    assert rl.linear_cross_entropy_cost(2, 3, 5, 4, "forward") == (100, 60)
    assert rl.linear_cross_entropy_cost(2, 3, 5, 4, "backward") == (184, 120)


def test_a_wrong_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        rl.contrastive_cost(4, 3, 4, "fwd")


@pytest.mark.parametrize("name, label, bandwidth, bf16, fp16", [
    ("Tesla V100-SXM2-16GB", "V100 SXM2", 900, None, 125),
    ("Tesla V100-SXM2-32GB", "V100 SXM2", 900, None, 125),
    ("Tesla V100-PCIE-16GB", "V100 PCIe", 900, None, 112),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB", 1555, 312, 312),
    ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM", 2039, 312, 312),
    ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe", 1935, 312, 312),
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 3350, 989.5, 989.5),
    ("NVIDIA H100 PCIe", "H100 PCIe", 2000, 756.5, 756.5),
    ("NVIDIA H200", "H200 SXM", 4800, 989.5, 989.5),
])
def test_gpu_table_matches_device_names(name, label, bandwidth, bf16, fp16):
    peaks = hardware.gpu_peaks(name)
    assert peaks.source.startswith(label)
    assert peaks.bandwidth_gbs == bandwidth
    assert peaks.flops_per_s(torch.float16) == fp16 * 1e12
    if bf16 is None:  # Volta has no bf16 unit: no peak rather than a wrong one
        assert math.isnan(peaks.flops_per_s("bf16"))
    else:
        assert peaks.flops_per_s(torch.bfloat16) == bf16 * 1e12
    assert peaks.half_precision_flops_per_s == max(fp16, bf16 or 0) * 1e12


def test_an_unknown_gpu_has_no_peak():
    assert hardware.gpu_peaks("NVIDIA GeForce RTX 4090") is None
    with pytest.raises(ValueError, match="dtype"):
        hardware.gpu_peaks("NVIDIA H200").flops_per_s("fp8")


def test_cpu_peaks_are_measured_once():
    state = torch.random.get_rng_state()
    first = hardware.cpu_peaks()
    assert torch.equal(state, torch.random.get_rng_state())  # the probe does not move the global RNG
    assert first is hardware.cpu_peaks()
    assert 0 < first.flops_per_s("fp32") < 1e15 and 0 < first.bandwidth_gbs < 1e4


def test_training_mfu_and_the_model_step_benchmark_use_the_same_table(monkeypatch):
    from vlengine.training.throughput import peak_flops

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "NVIDIA A100-SXM4-80GB")
    peak, source = peak_flops(torch.device("cuda"))
    assert peak == 312e12 and "A100 80GB SXM" in source
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100-SXM2-32GB")
    assert peak_flops(torch.device("cuda"))[0] == 125e12  # fp16: the V100's training precision
    import bench_model_step
    assert bench_model_step.peak_tflops("cuda")[0] == 125.0


def test_achieved_rates_and_fractions():
    import _common

    row = _common.Row("op", "case", "p", "forward", 2.0, 1.9, 2.1, None, bytes=4e6, flops=2e9)
    peaks = hardware.DevicePeaks("test", {"fp32": 10.0}, 100.0, "test")
    got = _common.achieved(row, peaks)
    assert got["gbs"] == pytest.approx(2.0) and got["bw_frac"] == pytest.approx(0.02)
    assert got["tflops"] == pytest.approx(1.0) and got["flop_frac"] == pytest.approx(0.1)
    missing = _common.achieved(_common.unavailable("op", "case", "p", "forward", "why"), peaks)
    assert set(missing.values()) == {None}
