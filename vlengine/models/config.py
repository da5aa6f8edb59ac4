"""Typed model configuration: one dataclass for every architecture, loadable from YAML or JSON.

The sizes follow BERT (base: 12 x 768, 12 heads, FFN 3072; large: 24 x 1024, 16
heads, FFN 4096). Settings where a paper and its released code disagree are
fields with the released code's value as the default (see
/work/shared/reference/implementations.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..atomic import write_json

_ACTIVATIONS = ("gelu", "gelu_tanh", "relu")
_ATTENTION = ("sdpa", "eager")
PRESETS = ("base", "large", "tiny")
# "computed": no learned vector; a masked RoI keeps the features the end-to-end front-end computed from
# the masked input (VL-BERT's released end-to-end pretraining: with MASK_RAW_PIXELS it passes no
# object_mask_visual_embedding to its Fast R-CNN, which uses one only when raw pixels are not masked).
MASKED_REGION_EMBEDDINGS = ("appearance", "visual", "computed")
# The 4-d box vector VL-BERT embeds. The paper (seed 001, sec. 3.2) writes the corners,
# (x_LT/W, y_LT/H, x_RB/W, y_RB/H); the released code embeds the centre and the size.
BOX_FORMS = ("centre_size", "corners")


@dataclass
class VLConfig:
    # text / transformer (BERT names and defaults; BERT-base sizes)
    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    max_position_embeddings: int = 512
    # VL-BERT uses three segments: A and B for text, C for regions and [END].
    # A BERT checkpoint has two rows; the third is initialised N(0, 0.02).
    type_vocab_size: int = 3
    layer_norm_eps: float = 1e-12
    pre_layer_norm: bool = False          # Pre-LN (stabler for very large batches); BERT is Post-LN
    initializer_range: float = 0.02
    pad_token_id: int = 0

    # regions
    region_feature_size: int = 2048
    geometry_frequencies: int = 256        # sin and cos of 256 frequencies x 4 coordinates = 2048
    geometry_wave_length: float = 1000.0
    # VL-BERT, paper vs released code (both kept; see train/README.md, "Paper and released code"):
    box_geometry: str = "centre_size"      # the embedded box vector: "centre_size" (code) or "corners" (paper 3.2)
    masked_region_embedding: str = "appearance"  # a masked RoI: its 2048-d appearance replaced, geometry kept
    #                                      (code), its whole visual feature embedding replaced ("visual", 3.3),
    #                                      or nothing replaced ("computed": end to end only, the front-end hides it)
    visual_dropout: float = 0.1            # VL-BERT: Dropout before Linear(4096, hidden)
    # VL-BERT's released code adds the visual term through a LayerNorm whose
    # weight starts at 0, so the untrained model is exactly the text BERT.
    visual_ln_init: float = 0.0
    num_region_classes: int = 1601         # Visual Genome detector classes incl. background
    max_text_length: int = 64
    max_regions: int = 100

    # execution
    attention: str = "sdpa"                # "eager" materialises softmax(QK^T) (the plain baseline)
    pack: bool = True                      # text, regions and [END] back to back (no padding between parts)
    unpad: bool = True                     # run the dense layers on real tokens only
    gradient_checkpointing: bool = False

    # InterBERT: layers per modality in the two-stream independence module
    num_independence_layers: int = 6
    # SemVLP: cross-modal attention (image queries, text keys) in layers with index >= this (0-based),
    # i.e. the paper's "l > L_s" with L_s = 6
    cross_attention_start: int = 6
    # heads
    num_answers: int = 3129                # image QA (VQA v2 answer set)
    contrastive_dim: int = 256             # CSS-BERT projection size

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size", "region_feature_size",
                     "geometry_frequencies", "num_region_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"VLConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"VLConfig.hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_heads ({self.num_heads})")
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"VLConfig.hidden_act must be one of {_ACTIVATIONS}, got {self.hidden_act!r}")
        if self.attention not in _ATTENTION:
            raise ValueError(f"VLConfig.attention must be one of {_ATTENTION}, got {self.attention!r}")
        for name in ("hidden_dropout", "attention_dropout", "visual_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"VLConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.box_geometry not in BOX_FORMS:
            raise ValueError(f"VLConfig.box_geometry must be one of {BOX_FORMS}, got {self.box_geometry!r}")
        if self.masked_region_embedding not in MASKED_REGION_EMBEDDINGS:
            raise ValueError(f"VLConfig.masked_region_embedding must be one of {MASKED_REGION_EMBEDDINGS}, "
                             f"got {self.masked_region_embedding!r}")
        if self.type_vocab_size < 3:
            raise ValueError("VLConfig.type_vocab_size must be >= 3 (segments A, B and C)")
        if self.cross_attention_start < 0:   # >= num_layers is allowed: a SemVLP without cross-attention
            raise ValueError(f"VLConfig.cross_attention_start must be >= 0, got {self.cross_attention_start}")
        if self.num_independence_layers < 0:
            raise ValueError("VLConfig.num_independence_layers must be >= 0")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def geometry_size(self) -> int:
        return 4 * 2 * self.geometry_frequencies

    # ---- presets ----
    @classmethod
    def base(cls, **overrides) -> "VLConfig":
        """BERT-base sizes: 12 layers, 768 hidden, 12 heads, FFN 3072."""
        return cls(**overrides)

    @classmethod
    def large(cls, **overrides) -> "VLConfig":
        """BERT-large sizes: 24 layers, 1024 hidden, 16 heads, FFN 4096."""
        return cls(**{"hidden_size": 1024, "num_layers": 24, "num_heads": 16, "intermediate_size": 4096,
                      **overrides})

    @classmethod
    def tiny(cls, **overrides) -> "VLConfig":
        """A few-layer model for tests and smoke runs (vocabulary and feature sizes kept small too)."""
        return cls(**{"vocab_size": 1000, "hidden_size": 64, "num_layers": 2, "num_heads": 4,
                      "intermediate_size": 128, "region_feature_size": 32, "geometry_frequencies": 8,
                      "num_region_classes": 17, "num_independence_layers": 1, "cross_attention_start": 1,
                      "num_answers": 11, "contrastive_dim": 16, "max_position_embeddings": 128, **overrides})

    # ---- files ----
    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "VLConfig":
        """Build from a mapping; unknown keys are an error (a typo must not silently fall back to a default).

        A ``preset`` key ("base", "large", "tiny") selects the starting sizes.
        """
        from vlengine._config import ConfigError, check_mapping

        values = dict(values) if isinstance(values, dict) else values
        preset = values.pop("preset", None) if isinstance(values, dict) else None
        values = check_mapping(cls, values, source, "model")  # unknown keys (with the closest one), types
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"{source}: model.preset must be 'base', 'large' or 'tiny', got {preset!r}")
        try:
            return getattr(cls, preset or "base")(**values)
        except ValueError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_file(cls, path) -> "VLConfig":
        """Load from a .json, .yaml or .yml file (a top-level ``model:`` section is accepted too)."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as error:
            raise ValueError(f"cannot read model config {path}: {error}") from error
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml
                values = yaml.safe_load(text)
            else:
                values = json.loads(text)
        except Exception as error:  # yaml.YAMLError / json.JSONDecodeError
            raise ValueError(f"model config {path} is not valid {path.suffix.lstrip('.')}: {error}") from error
        if isinstance(values, dict) and isinstance(values.get("model"), dict):
            values = values["model"]
        return cls.from_dict(values, source=str(path))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path) -> None:
        """Write as JSON (atomically: a crash leaves the old file or the new one, never half of one)."""
        write_json(path, self.to_dict(), indent=2, sort_keys=True)
