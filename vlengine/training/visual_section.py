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

import json
import os
from dataclasses import dataclass
from typing import Literal

from vlengine._config import ConfigError, from_mapping, to_plain

# config name -> VisualFrontEnd's name
FRONTEND_MASK_MODES = {"pixels": "pixels", "features": "feature_map", "none": "none"}
RESNET_FEATURES = 2048   # res5 of ResNet-50/101
CORPUS_WEIGHTS = "corpus"   # tiny trunk: its detector stage on the corpus (frontend_pretraining.py)
EXPORT_KEY = "visual"       # an export's header entry for its backbone's front-end (export_entry)


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
    feature_mask_margin: int = 0        # mask_mode features: masked boxes grow by this many map cells (the
                                        # cells around a box saw the object: VisualFrontEnd)
    stride: int = 16                    # the C4 map's stride: 16 (VL-BERT); tiny also 8 (res4 unstrided, for
                                        # small images: TinyC4 says why)

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
        if self.feature_mask_margin < 0:
            raise ValueError(f"model.visual.feature_mask_margin must be >= 0 cells, got {self.feature_mask_margin}")
        from vlengine.models.visual import TinyC4
        strides = TinyC4.STRIDES if self.trunk == "tiny" else (16,)
        if self.stride not in strides:
            raise ValueError(f"model.visual.stride must be one of {strides} for the {self.trunk} trunk, got {self.stride}")

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
        common = {"freeze_stem": self.freeze_stem, "freeze_res2": self.freeze_res2, "frozen_bn": self.frozen_bn,
                  "feature_mask_margin": self.feature_mask_margin}
        if self.trunk == "tiny":
            frontend = tiny_c4_frontend(self.width, self.out_features, mask_mode=mode, stride=self.stride, **common)
            weights = self.corpus_stage(corpus_dir, seed, log) if self.weights == CORPUS_WEIGHTS else self.weights
            if weights is not None:
                load_tiny_frontend(frontend, weights)
            return frontend
        return resnet_c4_frontend(int(self.trunk[len("resnet"):]), self.weights, mask_mode=mode, **common)

    def check_corpus(self, corpus_dir: str | None) -> None:
        """Weights "corpus" train the tiny trunk's detector stage on an embedded-layout corpus folder."""
        if corpus_dir is None or not os.path.isfile(os.path.join(corpus_dir, "MANIFEST.json")):
            raise ConfigError(f"model.visual.weights {CORPUS_WEIGHTS!r} trains the tiny trunk on an "
                              f"embedded-layout corpus folder; {corpus_dir!r} is not one")

    def corpus_stage(self, corpus_dir: str | None, seed: int, log=None) -> str:
        """The file of the tiny trunk's detector stage on ``corpus_dir`` (weights "corpus"; built on first
        use and kept, frontend_pretraining.py)."""
        from .frontend_pretraining import ensure_corpus_frontend

        self.check_corpus(corpus_dir)
        return ensure_corpus_frontend(corpus_dir, self.width, self.out_features, self.pretrain_steps, seed,
                                      log=log, stride=self.stride)

    def export_entry(self) -> str:
        """The header entry (``EXPORT_KEY``) of an export whose backbone has this front-end: its
        architecture, not its weights (the file holds the trained tensors, ``visual.*``)."""
        return json.dumps({k: v for k, v in to_plain(self).items() if k not in ("weights", "pretrain_steps")},
                          sort_keys=True)

    @classmethod
    def from_export(cls, entry: str, source: str) -> "VisualSection":
        """The section an export's ``EXPORT_KEY`` entry describes (weights: none, the file's tensors fill it)."""
        try:
            values = json.loads(entry)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{source}: its {EXPORT_KEY!r} entry cannot be read ({err})") from None
        return from_mapping(cls, values, source, EXPORT_KEY)


def export_extra(visual: "VisualSection | None") -> dict[str, str]:
    """The header entries an export of a backbone with ``visual``'s front-end carries ({} without one)."""
    return {} if visual is None else {EXPORT_KEY: visual.export_entry()}


def visual_of_export(info, source: str) -> "VisualSection | None":
    """The front-end an export's backbone was trained with (None: a precomputed-feature model)."""
    entry = info.extra.get(EXPORT_KEY)
    return None if entry is None else VisualSection.from_export(entry, source)


def backbone_with_visual(info, config, visual: "VisualSection | None"):
    """A fresh instance of the export's architecture, with ``visual``'s front-end (random weights:
    the export's tensors fill it)."""
    from vlengine.models.export import build_backbone

    if visual is None:
        return build_backbone(info, config)
    if info.architecture != "VLBert":
        raise ConfigError(f"an end-to-end front-end (model.visual) runs with VL-BERT, not {info.architecture}")
    from vlengine.models import VLBert
    return VLBert(config or info.config, visual=visual.build())
