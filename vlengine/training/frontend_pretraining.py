"""The tiny front-end's detector stage: trained as a region classifier before VL pretraining starts.

VL-BERT never trains its visual backbone from scratch: its Fast R-CNN starts from a
detector pretrained on Visual Genome, and end-to-end pretraining fine-tunes res3..res5
from there (stem and res2 frozen). The tiny front-end of the CPU end-to-end job
(`model.visual: {trunk: tiny, weights: corpus}`) gets the same start on the embedded
corpus: trunk + head + a linear classifier trained on the train split's region labels
(shape x colour x size, the corpus's detector classes), every stage trainable, then the
classifier dropped. Measured on the development CPU (2 cores): 400 steps of 32 images in
62 s reach 44.7% held-out region accuracy over the 126 classes (1,200 steps: 69.1%, 174 s). The
stride-8 trunk (`model.visual.stride: 8`), one thread: 400 steps 73.5% (62 s), 1,200 steps
86.7% (178 s); 1,200 steps on both cores: 85.8% (115 s).

The weights are built once per (corpus, sizes, stride, steps, seed) and kept beside the corpus
(as the corpus's own derived sets are). A multi-rank run builds them on rank 0 while the
others wait (run.py); the file is written atomically and the same seed and data order give
the same weights, so two processes that do build it at once are still safe.
"""

from __future__ import annotations

import json
import os
import time

import torch
import torch.nn.functional as F

FRONTEND_VERSION = 1


def frontend_cache_path(corpus_dir: str, width: int, out_features: int, steps: int, seed: int,
                        stride: int = 16) -> str:
    # Both strides have the same tensors: the stride is in the name (stride-16 files keep their earlier name).
    stride_part = "" if stride == 16 else f"-stride{stride}"
    return (os.path.abspath(corpus_dir).rstrip(os.sep) + f"-frontend-tiny-w{width}-f{out_features}{stride_part}"
            f"-s{steps}-seed{seed}-v{FRONTEND_VERSION}.safetensors")


def pretrain_tiny_frontend(corpus_dir: str, width: int, out_features: int, steps: int, seed: int = 0,
                           batch_size: int = 32, lr: float = 3e-3, log=None, stride: int = 16) -> tuple[dict, float]:
    """(front-end state dict, held-out region accuracy) after ``steps`` of region classification."""
    from vlengine.data import ImageTransform, make_pretrain_loader
    from vlengine.models.visual import tiny_c4_frontend

    with open(os.path.join(corpus_dir, "MANIFEST.json"), encoding="utf-8") as f:
        num_classes = int(json.load(f)["classes"])
    transform = ImageTransform(None, None, "torchvision", 0.0)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        frontend = tiny_c4_frontend(width, out_features, freeze_stem=False, freeze_res2=False, frozen_bn=True,
                                    mask_mode="none", stride=stride)
        classifier = torch.nn.Linear(out_features, num_classes)
    finally:
        torch.random.set_rng_state(generator_state)   # the run's own init stays what its seed makes it
    params = list(frontend.parameters()) + list(classifier.parameters())
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    batches = make_pretrain_loader(os.path.join(corpus_dir, "train"), batch_size=batch_size, image_transform=transform,
                                   seed=seed, drop_last=True)
    start = time.time()
    for step in range(steps):
        logits, labels = _region_logits(frontend, classifier, next(batches))
        loss = F.cross_entropy(logits, labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if log is not None and (step + 1) % 100 == 0:
            log(f"front-end pretraining: step {step + 1}/{steps} loss {loss.item():.3f} ({time.time() - start:.0f}s)")
    accuracy = _heldout_accuracy(frontend, classifier, os.path.join(corpus_dir, "heldout"), transform)
    return frontend.state_dict(), accuracy


def _region_logits(frontend, classifier, batch):
    features, _whole = frontend(batch.images, batch.region_boxes, batch.region_valid, None, batch.image_size)
    labelled = batch.region_valid & (batch.region_labels >= 0)   # region 0 (the whole image) has no class
    return classifier(features[labelled]), batch.region_labels[labelled]


@torch.no_grad()
def _heldout_accuracy(frontend, classifier, store: str, transform, images: int = 256) -> float:
    from vlengine.data import make_pretrain_loader

    loader = make_pretrain_loader(store, batch_size=64, image_transform=transform, shuffle=False, epochs=1)
    correct = total = 0
    for batch in loader:
        logits, labels = _region_logits(frontend, classifier, batch)
        correct += int((logits.argmax(1) == labels).sum())
        total += int(labels.numel())
        if total >= images * 3:
            break
    return correct / max(total, 1)


def ensure_corpus_frontend(corpus_dir: str, width: int, out_features: int, steps: int, seed: int = 0,
                           log=None, stride: int = 16) -> str:
    """The detector-stage weights of the tiny front-end on ``corpus_dir`` (built on first use)."""
    from safetensors.torch import save_file

    path = frontend_cache_path(corpus_dir, width, out_features, steps, seed, stride)
    if os.path.isfile(path):
        return path
    if log is not None:
        log(f"front-end pretraining: the tiny trunk as a region classifier on {corpus_dir} ({steps} steps, "
            "once; kept for later runs)")
    state, accuracy = pretrain_tiny_frontend(corpus_dir, width, out_features, steps, seed, log=log, stride=stride)
    tmp = f"{path}.tmp-{os.getpid()}"
    save_file({k: v.contiguous() for k, v in state.items()}, tmp,
              metadata={"held_out_region_accuracy": f"{accuracy:.4f}", "steps": str(steps), "seed": str(seed),
                        "stride": str(stride)})
    os.replace(tmp, path)
    if log is not None:
        log(f"front-end pretraining: held-out region accuracy {accuracy:.1%} -> {path}")
    return path
