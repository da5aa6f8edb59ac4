"""The sections of a pretraining config as typed dataclasses: model, objective (per recipe), masking,
data and eval (train is vlengine.training.settings.TrainSettings). Each knows its keys, their types and
defaults; `vlengine._config.from_mapping` builds them, so a typo fails when the file is read.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Literal

from vlengine._config import ConfigError, check_mapping, from_mapping, to_plain

RECIPES = ("vlbert", "interbert", "semvlp", "cssbert")
MASKING_PRESETS = ("vlbert", "interbert", "interbert-released", "semvlp", "cssbert")


def resolve_path(path: str | None, base_dir: str | None) -> str | None:
    """A path from a config file is relative to that file's folder (from the command line: the working dir)."""
    if path is None or base_dir is None or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base_dir, path))


# ---- model ------------------------------------------------------------------------------------------

_AUTO_SIZES = ("vocab_size", "num_region_classes")  # "auto": taken from the corpus


@dataclass
class ModelSection:
    """`preset` (base | large | tiny) + VLConfig fields; vocab_size / num_region_classes may be "auto"."""
    preset: str | None = None
    bert_checkpoint: str | None = None    # a local BERT folder (relative to the config file)
    settings: dict = field(default_factory=dict)  # VLConfig overrides, as written
    visual: object = None                 # a VisualSection (end to end from raw images) or None (precomputed)

    @classmethod
    def from_mapping(cls, mapping, source: str, base_dir: str | None = None) -> "ModelSection":
        from vlengine.models import VLConfig
        from vlengine.models.config import PRESETS

        if mapping is None:
            mapping = {}
        if not isinstance(mapping, dict):
            raise ConfigError(f"{source}: expected a mapping of settings at section 'model', got "
                              f"{type(mapping).__name__} {mapping!r}")
        settings = dict(mapping)
        preset = settings.pop("preset", None)
        checkpoint = settings.pop("bert_checkpoint", None)
        visual = _visual_section(settings.pop("visual", None), source, base_dir)
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"{source}: model.preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        if checkpoint is not None and not isinstance(checkpoint, str):
            raise ConfigError(f"{source}: model.bert_checkpoint must be a path, got {checkpoint!r}")
        autos = {k for k in _AUTO_SIZES if settings.get(k) == "auto"}
        checked = check_mapping(VLConfig, {k: v for k, v in settings.items() if k not in autos}, source, "model")
        # Build once with placeholder sizes so VLConfig's own checks (heads divide hidden, ...) run now.
        try:
            # end to end, region_feature_size defaults to the front-end's feature size (see build)
            implied = {"region_feature_size": visual.feature_size} \
                if visual is not None and "region_feature_size" not in checked else {}
            placeholder = getattr(VLConfig, preset or "base")(**checked, **implied, **{k: 1 for k in autos})
        except ValueError as err:
            raise ConfigError(f"{source}: {err}") from None
        if visual is not None:
            visual.check_model(placeholder.region_feature_size, source)
        checked.update({k: "auto" for k in autos})
        return cls(preset=preset, bert_checkpoint=resolve_path(checkpoint, base_dir), settings=checked, visual=visual)

    def build(self, vocab_size: int, num_region_classes: int | None):
        """The VLConfig, with "auto" sizes from the corpus (its vocabulary and region classes)."""
        from vlengine.models import VLConfig

        values = dict(self.settings)
        if self.visual is not None:
            values.setdefault("region_feature_size", self.visual.feature_size)
        if values.get("vocab_size") == "auto":
            values["vocab_size"] = vocab_size
        if values.get("num_region_classes") == "auto":
            if num_region_classes is None:
                raise ConfigError("model.num_region_classes is 'auto' but the corpus MANIFEST.json has no 'classes'")
            values["num_region_classes"] = int(num_region_classes)
        return getattr(VLConfig, self.preset or "base")(**values)

    def to_dict(self) -> dict:
        out = {"preset": self.preset} if self.preset is not None else {}
        if self.bert_checkpoint is not None:
            out["bert_checkpoint"] = self.bert_checkpoint
        if self.visual is not None:
            out["visual"] = to_plain(self.visual)
        return {**out, **self.settings}


def _visual_section(mapping, source: str, base_dir: str | None):
    """model.visual (vlengine.training.visual_section), its weights path relative to the config file."""
    from .visual_section import VisualSection

    if mapping is None:
        return None
    visual = from_mapping(VisualSection, mapping, source, "model.visual")
    if visual.weights != "corpus":   # visual_section.CORPUS_WEIGHTS: built, not a file
        visual.weights = resolve_path(visual.weights, base_dir)
    return visual


# ---- objective, one per recipe ----------------------------------------------------------------------

@dataclass
class VLBertObjective:
    mrc_weight: float = 1.0
    itm_weight: float = 0.0
    soft_region_targets: bool | None = None    # None: soft when masking.region_targets is "soft"
    region_visual_ln_init: float | None = None  # start the regions' visual LayerNorm weight here (None: model's)


@dataclass
class InterBertObjective:
    mrm_weight: float = 1.0
    itm_weight: float = 1.0
    soft_region_targets: bool | None = None
    stage_two_step: int = 0                     # steps < this: MLM + MOM; then MSM + MRM + ITM (0: stage two only)
    stage_one_share: float = 0.0                # or: stage one = this share of train.total_steps (paper: 1/3)
    stage_one_itm: bool = False                 # ITM in stage one too (paper sec. 4.6: MLM + MOM + ITM)
    itm_image: Literal["region_mean", "img_token"] = "region_mean"   # the image side of ITM (paper: [IMG])

    def __post_init__(self):
        if not 0.0 <= self.stage_one_share < 1.0:
            raise ValueError(f"objective.stage_one_share must be in [0, 1), got {self.stage_one_share}")
        if self.stage_one_share > 0 and self.stage_two_step > 0:
            raise ValueError("objective.stage_one_share and objective.stage_two_step both place the stage "
                             "switch: give one of them")


@dataclass
class SemVLPObjective:
    mop_regression_weight: float = 1.0
    mop_label_weight: float = 1.0
    itm_weight: float = 1.0
    regression: str = "mse"
    two_stream_prob: float = 0.5
    qa_weight: float = 1.0                      # image QA (on the question rows data.qa mixes in)

    def __post_init__(self):
        if not 0.0 <= self.two_stream_prob <= 1.0:
            raise ValueError(f"objective.two_stream_prob must be in [0, 1], got {self.two_stream_prob}")


@dataclass
class CSSBertObjective:
    nsp_weight: float = 1.0
    pwcl_weight: float = 1.0
    temperature: float = 0.07
    kind: Literal["pwcl", "infonce", "pwcl_printed"] = "pwcl"   # pwcl_printed: the poster's raw-dot ratio
    distributed: bool = True
    contrastive_inputs: str = "separate"
    nsp_negatives: Literal["loader", "in_batch"] = "loader"   # NSP's random half (in_batch: PwCL sees all pairs)


OBJECTIVES = {"vlbert": VLBertObjective, "interbert": InterBertObjective, "semvlp": SemVLPObjective,
              "cssbert": CSSBertObjective}


def objective_kwargs(objective, *model_side: str) -> dict:
    """The objective's settings that its task class takes (those named in `model_side` are used elsewhere)."""
    return {f.name: getattr(objective, f.name) for f in dataclasses.fields(objective) if f.name not in model_side}


# ---- masking ----------------------------------------------------------------------------------------

@dataclass
class MaskingSection:
    preset: str | None = None        # a paper's masking (vlengine.data.masking.masking_for); default: the recipe's
    mlm_prob: float = 0.15           # VL-BERT's whole-word MLM (vlbert, and InterBERT's MLM + MOM stage)
    whole_word: bool = True
    region_targets: Literal["soft", "hard"] = "soft"   # detector score vectors, or exact class labels
    region_mask_prob: float = 0.9    # VL-BERT: share of the selected RoIs whose input is masked (the rest kept)
    one_modality_per_row: bool = False  # a row masks its text or its regions, never both (InterBERT paper)

    def __post_init__(self):
        if self.preset is not None and self.preset not in MASKING_PRESETS:
            raise ValueError(f"masking.preset must be one of {', '.join(MASKING_PRESETS)}, got {self.preset!r}")
        if not 0.0 < self.mlm_prob < 1.0:
            raise ValueError(f"masking.mlm_prob must be in (0, 1), got {self.mlm_prob}")
        if not 0.0 <= self.region_mask_prob <= 1.0:
            raise ValueError(f"masking.region_mask_prob must be in [0, 1], got {self.region_mask_prob}")


# ---- data -------------------------------------------------------------------------------------------

@dataclass
class DataSection:
    corpus: str = "embedded"         # "embedded" (built on first use) or a corpus folder, relative to the config file
    corpus_seed: int = 0             # seed of the embedded corpus
    train: str | None = None         # single paths inside the corpus folder (defaults: train, heldout, vocab.txt,
    heldout: str | None = None       # text/corpus.txt when present)
    vocab: str | None = None
    text_corpus: str | None = None
    text_ratio: float = 1.0          # text-only batches per caption batch
    text_batch_size: int | None = None
    text_chunk_len: int = 64
    itm_negative_prob: float = 0.0   # share of captions paired with another image (ITM negatives)
    max_regions: int | None = None
    max_text_len: int = 64
    num_workers: int = 0
    max_tokens: int | None = None
    # Raw-image mode (end to end, model.visual): the store's JPEGs decoded into batch.images, boxes in
    # the resized image's pixels, region features not read. Sizes: VL-BERT's 600 / 1000; None keeps
    # the stored size (the embedded corpus: 128 x 128).
    images: bool = False
    image_min_size: int | None = None
    image_max_size: int | None = None
    image_normalisation: Literal["caffe", "torchvision"] = "torchvision"   # caffe: VL-BERT's Detectron weights
    image_flip_prob: float = 0.0
    # Image-QA pretraining (SemVLP sec. 3.1, after LXMERT): questions about the store's images, a VQA or
    # GQA annotation set ("corpus": the questions an embedded-layout corpus folder ships, as the built-in
    # corpus does, in downstream/vqa_train.jsonl), mixed in as qa_ratio batches of
    # qa_batch_size rows (default: the micro batch) per caption batch; answer classes are the
    # normalised answers given for at least qa_min_answer_count questions.
    qa: str | None = None
    qa_ratio: float = 0.0
    qa_batch_size: int | None = None
    qa_min_answer_count: int = 1

    def image_transform(self, flip: bool = True):
        """The data package's ImageTransform for raw-image mode, or None (flip=False: evaluation's, no flips)."""
        if not self.images:
            return None
        from vlengine.data.images import ImageTransform
        return ImageTransform(self.image_min_size, self.image_max_size, self.image_normalisation,
                              self.image_flip_prob if flip else 0.0)

    def __post_init__(self):
        if self.images:
            try:
                self.image_transform()   # its own checks: sizes given together, flip probability
            except ValueError as err:
                raise ValueError(f"data: {err}") from None
        if self.text_ratio < 0:
            raise ValueError(f"data.text_ratio must be >= 0, got {self.text_ratio}")
        if not 0.0 <= self.itm_negative_prob < 1.0:
            raise ValueError(f"data.itm_negative_prob must be in [0, 1), got {self.itm_negative_prob}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.qa_ratio < 0:
            raise ValueError(f"data.qa_ratio must be >= 0, got {self.qa_ratio}")
        if self.qa_ratio > 0 and self.qa is None:
            raise ValueError(f"data.qa_ratio {self.qa_ratio} mixes in questions, but data.qa names none (an "
                             "annotation set from `vlengine data convert --from vqa|gqa`, or 'corpus')")
        if self.qa_batch_size is not None and self.qa_batch_size < 1:
            raise ValueError(f"data.qa_batch_size must be >= 1, got {self.qa_batch_size}")
        if self.qa_min_answer_count < 1:
            raise ValueError(f"data.qa_min_answer_count must be >= 1, got {self.qa_min_answer_count}")

    @classmethod
    def from_mapping(cls, mapping, source: str, base_dir: str | None = None) -> "DataSection":
        data = from_mapping(cls, mapping, source, "data")
        if data.corpus != "embedded":
            data.corpus = resolve_path(data.corpus, base_dir)
        if data.qa not in (None, "corpus"):
            data.qa = resolve_path(data.qa, base_dir)
        return data

    def check_corpus(self, source: str) -> None:
        """A corpus folder that does not exist is a user's mistake: say so before anything starts."""
        if self.corpus != "embedded" and not os.path.isdir(self.corpus):
            raise ConfigError(f"{source}: data.corpus {self.corpus!r} is not a folder (a path in a config file is "
                              "relative to the file; use 'embedded' for the built-in corpus)")
        if self.qa not in (None, "corpus") and not os.path.isdir(self.qa):
            raise ConfigError(f"{source}: data.qa {self.qa!r} is not a folder (an annotation set from `vlengine data "
                              "convert --from vqa|gqa`; a path in a config file is relative to the file; 'corpus' "
                              "for the questions of the corpus folder, as the built-in corpus ships them)")


# ---- eval -------------------------------------------------------------------------------------------

@dataclass
class EvalSection:
    captions: int = 1000             # held-out captions for the attribute-word and region accuracies
    batch_size: int = 128
    retrieval_images: int = 50       # zero-shot retrieval over this many images (<= 1: skip)
    seed: int = 0                    # masking seed of the evaluation
