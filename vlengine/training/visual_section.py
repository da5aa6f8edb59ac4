"""`model.visual`: the end-to-end visual front-end a VL-BERT config trains with the encoder.

    model:
      visual: {trunk: resnet101 | resnet50 | tiny, mask_mode: pixels | features | none, weights: FILE, ...}

With it the model reads raw images (data.images: true) instead of precomputed region features:
trunk (stem + res2..res4, stride 16) -> RoIAlign 14 x 14 -> res5-style head -> region features,
trained with the encoder. How a masked RoI is hidden from vision (vlengine.models.visual.VisualFrontEnd):
  pixels    its pixels are set to the mean before the trunk (VL-BERT; one batched mask_pixels call)
  features  its cells of the C4 map are zeroed inside roi_align_masked (cheaper: no masked image copy)
  none      not hidden (ablation: the masked region's appearance reaches the model through region 0
            and the neighbouring RoIs)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from vlengine._config import ConfigError

# config name -> VisualFrontEnd's name
FRONTEND_MASK_MODES = {"pixels": "pixels", "features": "feature_map", "none": "none"}
RESNET_FEATURES = 2048   # res5 of ResNet-50/101
CORPUS_WEIGHTS = "corpus"   # tiny trunk: its detector stage on the corpus (frontend_pretraining.py)


@dataclass
class VisualSection:
    trunk: Literal["resnet101", "resnet50", "tiny"] = "resnet101"
    mask_mode: Literal["pixels", "features", "none"] = "pixels"
    # ResNets: a torchvision state dict (.pth / .safetensors), relative to the file. tiny: "corpus" (its
    # detector stage: trained as a region classifier on the corpus first, frontend_pretraining.py; built
    # once and kept), a front-end state dict (.safetensors) that stage wrote, or None (random init)
    weights: str | None = None
    pretrain_steps: int = 400           # tiny, weights "corpus": steps of the detector stage (32 images each)
    freeze_stem: bool = True            # Fast R-CNN / VL-BERT: stem and res2 frozen ...
    freeze_res2: bool = True
    frozen_bn: bool = True              # ... and BatchNorm frozen (1-2 images per GPU: batch statistics are noise)
    width: int = 16                     # tiny trunk: channels of the stem (res4 has 4x)
    out_features: int = 64              # tiny head: region feature size (= 4 * width: identity shortcut)

    def __post_init__(self):
        if self.pretrain_steps < 1:
            raise ValueError(f"model.visual.pretrain_steps must be >= 1, got {self.pretrain_steps}")
        if self.trunk != "tiny" and self.weights == CORPUS_WEIGHTS:
            raise ValueError(f"model.visual.weights {CORPUS_WEIGHTS!r} pretrains the tiny trunk on the corpus; the "
                             f"{self.trunk} trunk reads a torchvision state dict file")
        if self.trunk == "tiny":
            if self.width < 1 or self.out_features < 1:
                raise ValueError(f"model.visual: width and out_features must be >= 1, got {self.width}, "
                                 f"{self.out_features}")

    @property
    def feature_size(self) -> int:
        """Size of the region features the front-end gives (model.region_feature_size must equal it)."""
        return self.out_features if self.trunk == "tiny" else RESNET_FEATURES

    def check_model(self, region_feature_size: int, source: str) -> None:
        if region_feature_size != self.feature_size:
            raise ConfigError(f"{source}: model.region_feature_size is {region_feature_size} but the "
                              f"{self.trunk} front-end gives {self.feature_size}-d region features")

    def build(self, corpus_dir: str | None = None, seed: int = 0, log=None):
        """The VisualFrontEnd (vlengine.models.visual), weights loaded when given (``corpus_dir``: the
        corpus folder the tiny trunk's detector stage trains on, for weights "corpus")."""
        from vlengine.models.visual import load_tiny_frontend, resnet_c4_frontend, tiny_c4_frontend

        mode = FRONTEND_MASK_MODES[self.mask_mode]
        freezing = {"freeze_stem": self.freeze_stem, "freeze_res2": self.freeze_res2, "frozen_bn": self.frozen_bn}
        if self.trunk == "tiny":
            frontend = tiny_c4_frontend(self.width, self.out_features, mask_mode=mode, **freezing)
            weights = self.weights
            if weights == CORPUS_WEIGHTS:
                from .frontend_pretraining import ensure_corpus_frontend
                if corpus_dir is None or not os.path.isfile(os.path.join(corpus_dir, "MANIFEST.json")):
                    raise ConfigError(f"model.visual.weights {CORPUS_WEIGHTS!r} trains the tiny trunk on an "
                                      f"embedded-layout corpus folder; {corpus_dir!r} is not one")
                weights = ensure_corpus_frontend(corpus_dir, self.width, self.out_features, self.pretrain_steps,
                                                 seed, log=log)
            if weights is not None:
                load_tiny_frontend(frontend, weights)
            return frontend
        return resnet_c4_frontend(int(self.trunk[len("resnet"):]), self.weights, mask_mode=mode, **freezing)
