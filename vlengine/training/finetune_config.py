"""The fine-tuning config: typed sections read from YAML or JSON, every key checked when the file is read.

    task: {name: vqa | gqa | nlvr2 | retrieval | refcoco | vcr, head, loss, ...}   FinetuneTask
    init: FILE.safetensors | BERT_DIR | null    an engine export (`vlengine pretrain`, `convert-checkpoint`),
                                                 a Hugging Face BERT folder (text-only start), or nothing
    model: {preset, ...}                         the architecture when init is a BERT folder or null
                                                 (an export carries its own; then only dropouts may change)
    data: {corpus: embedded | null, train, val, images, vocab, answers, ...}   FinetuneData
    deepspeed: FILE.json or inline;  train: TrainSettings;  eval: FinetuneEval

Paths in a config file are relative to the file's folder; paths from the command line to the working
directory. `vlengine finetune` with no --config runs the shipped finetune_vqa.yaml: the embedded
corpus's questions, from the main job's export when `runs/main-job/model_fp32.safetensors` exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from vlengine._config import ConfigError, from_mapping, to_plain

from .config import _train, apply_overrides, check_top_level, deepspeed_source, read_config_file, read_deepspeed_config
from .sections import ModelSection, resolve_path
from .settings import TrainSettings

TASKS = ("vqa", "gqa", "nlvr2", "retrieval", "refcoco", "vcr")
EMBEDDED_TASKS = ("vqa", "retrieval", "refcoco", "vcr")   # the embedded corpus has sets for these
END_TO_END_TASKS = ("refcoco", "vcr")                     # model.visual: VL-BERT fine-tunes these on pixels
SECTIONS = ("task", "init", "model", "data", "deepspeed", "train", "eval")
# Settings of an export's model config a fine-tuning run may change (sizes come from the weights).
EXPORT_MODEL_OVERRIDES = ("hidden_dropout", "attention_dropout", "visual_dropout", "gradient_checkpointing",
                          "attention", "pack", "unpad")


@dataclass
class FinetuneTask:
    name: Literal["vqa", "gqa", "nlvr2", "retrieval", "refcoco", "vcr"] = "vqa"
    head: Literal["answer_slot", "pooled_mlp"] = "answer_slot"   # VQA/GQA: VL-BERT's [MASK] slot, or UNITER's MLP
    loss: Literal["bce", "ce"] = "bce"          # VQA: BCE on soft scores x answers; GQA: "ce" on the class;
                                                # RefCOCO: "bce" per region vs IoU > 0.5 (VL-BERT), "ce" softmax
                                                # over the image's regions (UNITER)
    head_lr_multiplier: float = 1.0             # the new head's learning rate x this (UNITER: 10)
    min_answer_count: int = 9                   # VQA answer vocabulary: answers of >= this many questions
    with_image: bool = True                     # false: the question-only baseline (same head, no image);
                                                # RefCOCO: region features zeroed, boxes kept (geometry only)
    head_from_pretraining: bool = True          # answer_slot transform from the MLM head, ITM head from ITM
    retrieval_objective: Literal["itm", "contrastive", "both"] = "both"
    negatives: Literal["hard", "random"] = "hard"
    temperature: float = 0.07
    # RefCOCO: the region score head, where the candidate boxes come from, and the metric's IoU settings
    # (VL-BERT's by default: +1-pixel areas, IoU >= 0.5; UNITER: continuous areas, IoU > 0.5)
    region_head: Literal["transform", "linear"] = "transform"
    track: Literal["gt", "detected"] = "gt"
    iou_convention: Literal["plus_one", "continuous"] = "plus_one"
    iou_comparison: Literal[">=", ">"] = ">="
    # VCR: which sub-tasks one model learns ("both": Q->A and QA->R items mixed, so one model gives Q->A,
    # QA->R, Q->AR and the submission; VL-BERT and R2C train one model per sub-task: "q_a" / "qa_r"),
    # softmax or per-choice sigmoid over the four, and VL-BERT's auxiliary region-classification loss
    # (its weight; 0 = off: stores converted from VCR's files carry no detector labels to train it on)
    vcr_subtasks: Literal["both", "q_a", "qa_r"] = "both"
    vcr_loss: Literal["softmax", "sigmoid"] = "softmax"
    region_class_weight: float = 0.0

    def __post_init__(self):
        if self.head_lr_multiplier <= 0:
            raise ValueError(f"task.head_lr_multiplier must be positive, got {self.head_lr_multiplier}")
        if self.min_answer_count < 1:
            raise ValueError(f"task.min_answer_count must be >= 1, got {self.min_answer_count}")
        if self.region_class_weight < 0:
            raise ValueError(f"task.region_class_weight must be >= 0, got {self.region_class_weight}")

    @property
    def vcr_subtask_names(self) -> tuple[str, ...]:
        return ("q_a", "qa_r") if self.vcr_subtasks == "both" else (self.vcr_subtasks,)


@dataclass
class FinetuneData:
    corpus: str | None = None        # "embedded": the embedded corpus's sets (vqa, retrieval, refcoco, vcr) and stores
    corpus_seed: int = 0
    train: str | None = None         # annotation sets: `vlengine data convert --from vqa|gqa|nlvr2|karpathy|refcoco|vcr`
    val: str | None = None
    images: str | None = None        # the region store holding the train images (and val's, unless val_images)
    val_images: str | None = None
    vocab: str | None = None         # WordPiece vocab.txt (default: the one the init export carries)
    answers: str | None = None       # answer vocabulary JSON (default: built from train, saved in the run)
    max_text_len: int = 64
    max_regions: int | None = None
    num_workers: int = 0
    # End to end (model.visual; RefCOCO, VCR): the raw-image store's images are resized (short side
    # image_min_size, long side at most image_max_size; None keeps the stored size) and normalised
    # for the trunk. No flips: a mirrored image would contradict "left" / "right" in the answers.
    image_min_size: int | None = None
    image_max_size: int | None = None
    image_normalisation: Literal["caffe", "torchvision"] = "torchvision"

    def image_limits(self) -> dict:
        """The image transform's settings as the run's input limits record them (finetune_run.make_dataset)."""
        return {"image_min_size": self.image_min_size, "image_max_size": self.image_max_size,
                "image_normalisation": self.image_normalisation}

    def paths(self) -> tuple[str, ...]:
        return ("train", "val", "images", "val_images", "vocab", "answers")


@dataclass
class FinetuneEval:
    batch_size: int = 128
    question_only_baseline: bool = False   # then also fine-tune with the image removed and print both
                                           # (RefCOCO: region features zeroed, boxes kept)
    retrieval_mode: Literal["full", "two_stage", "both"] = "both"
    retrieval_k: int = 128                 # two-stage: candidates per query from the dual encoder


@dataclass
class FinetuneConfig:
    task: FinetuneTask = field(default_factory=FinetuneTask)
    init: str | None = None
    model: ModelSection = field(default_factory=ModelSection)
    data: FinetuneData = field(default_factory=FinetuneData)
    deepspeed: dict | str = field(default_factory=dict)
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: FinetuneEval = field(default_factory=FinetuneEval)
    deepspeed_config: dict = field(default_factory=dict, repr=False)
    source: str = field(default="config", repr=False, compare=False)
    notes: list = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def from_dict(cls, values: dict, base_dir: str | None = None, source: str = "config") -> "FinetuneConfig":
        values = check_top_level(values, SECTIONS, source)
        init = values.get("init")
        if init is not None and not isinstance(init, str):
            raise ConfigError(f"{source}: init must be a path (an export .safetensors or a BERT folder), got {init!r}")
        data = from_mapping(FinetuneData, values.get("data"), source, "data")
        for name in data.paths():
            setattr(data, name, resolve_path(getattr(data, name), base_dir))
        if data.corpus not in (None, "embedded"):
            raise ConfigError(f"{source}: data.corpus is 'embedded' or unset (then data.train/val/images name "
                              f"converted files), got {data.corpus!r}")
        ds_source = deepspeed_source(values, base_dir)
        notes = []
        train = _train(values.get("train"), source, notes)
        if train.processes != 1 or train.lr_mult:
            # vlengine finetune neither starts ranks itself nor takes name-matched rates
            raise ConfigError(f"{source}: train.processes and train.lr_mult are pretraining settings: start "
                              "fine-tuning's ranks with a launcher (torchrun, deepspeed), and set the head's rate "
                              "with task.head_lr_multiplier")
        return cls(task=from_mapping(FinetuneTask, values.get("task"), source, "task"),
                   init=resolve_path(init, base_dir),
                   model=ModelSection.from_mapping(values.get("model"), source, base_dir),
                   data=data, deepspeed=ds_source, deepspeed_config=read_deepspeed_config(ds_source, source),
                   train=train,
                   eval=from_mapping(FinetuneEval, values.get("eval"), source, "eval"), source=source, notes=notes)

    @classmethod
    def from_file(cls, path: str) -> "FinetuneConfig":
        return cls.from_dict(read_config_file(path, "fine-tuning"), base_dir=os.path.dirname(os.path.abspath(path)),
                             source=path)

    def with_overrides(self, assignments: list[str]) -> "FinetuneConfig":
        return apply_overrides(self, assignments, SECTIONS)

    def check_before_run(self) -> None:
        """What the files alone cannot show: the paths exist and the task has what it reads."""
        if not self.deepspeed_config:
            raise ConfigError(f"{self.source}: no deepspeed section (a DeepSpeed JSON file, relative to the config "
                              "file, or inline settings with train_micro_batch_size_per_gpu)")
        if self.init is not None and not os.path.exists(self.init):
            raise ConfigError(f"{self.source}: init {self.init!r} does not exist (an engine export .safetensors or "
                              "a BERT folder; a path in a config file is relative to the file)")
        data = self.data
        if data.corpus == "embedded":
            if self.task.name not in EMBEDDED_TASKS:
                raise ConfigError(f"{self.source}: the embedded corpus has sets for tasks {', '.join(EMBEDDED_TASKS)}; "
                                  f"for {self.task.name} set data.train, data.val and data.images")
        else:
            for name in ("train", "images"):
                if getattr(data, name) is None:
                    raise ConfigError(f"{self.source}: data.{name} is not set (or set data.corpus: embedded)")
        for name in data.paths():
            path = getattr(data, name)
            if path is not None and not os.path.exists(path):
                raise ConfigError(f"{self.source}: data.{name} {path!r} does not exist (a path in a config file is "
                                  "relative to the file)")
        if self.model.visual is not None and self.task.name not in END_TO_END_TASKS:
            raise ConfigError(f"{self.source}: model.visual (end to end from raw images) is wired for tasks "
                              f"{' and '.join(END_TO_END_TASKS)}; {self.task.name} reads the store's precomputed "
                              "region features")
        if self.task.name in ("nlvr2", "retrieval") and self.eval.question_only_baseline:
            raise ConfigError(f"{self.source}: eval.question_only_baseline is for vqa, gqa, refcoco and vcr")

    def to_dict(self) -> dict:
        return {"task": to_plain(self.task), "init": self.init, "model": self.model.to_dict(),
                "data": to_plain(self.data), "deepspeed": to_plain(self.deepspeed_config),
                "train": to_plain(self.train), "eval": to_plain(self.eval)}

    def to_yaml(self) -> str:
        import yaml
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
