"""The model a fine-tuning run trains: a backbone from its `init` plus the task's head.

    init = an engine export (.safetensors: `vlengine pretrain`, `pretrain export`, `convert-checkpoint`)
           -> the export's architecture and config, its backbone weights; with task.head_from_pretraining
              the answer slot's transform starts from the MLM head's, retrieval's ITM head from the ITM head
    init = a Hugging Face BERT folder -> a VL-BERT of the `model` section, text parts from BERT
    init = null -> a VL-BERT of the `model` section, freshly initialised
A fine-tuned export (the run's model_fp32.safetensors) holds "backbone.*" and "head.*" tensors and its
task settings and answers in the header, so `vlengine evaluate` rebuilds it from the file alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace

import torch

from vlengine._config import ConfigError, to_plain

from .finetune_config import EXPORT_MODEL_OVERRIDES, FinetuneConfig, FinetuneTask


@dataclass
class Init:
    backbone: torch.nn.Module
    heads: dict = field(default_factory=dict)   # pretrained head tensors of an export, by prefix ("mlm.", "itm.")
    vocab_text: str | None = None               # the WordPiece vocabulary an export carries
    description: str = "fresh initialisation"


def _export_config(info, model_settings: dict, source: str):
    """The export's own VLConfig; only run-time settings (dropouts, checkpointing) may differ from it
    (the model section of a config that also serves fresh starts may repeat the export's sizes)."""
    fixed = sorted(k for k, v in model_settings.items()
                   if k not in EXPORT_MODEL_OVERRIDES and v != "auto" and getattr(info.config, k) != v)
    if fixed:
        raise ConfigError(f"{source}: init is an engine export, whose model config is fixed by its weights: "
                          f"model.{fixed[0]} is {getattr(info.config, fixed[0])!r} there, the config asks for "
                          f"{model_settings[fixed[0]]!r} (may differ: {', '.join(EXPORT_MODEL_OVERRIDES)})")
    return replace(info.config, **{k: v for k, v in model_settings.items() if k in EXPORT_MODEL_OVERRIDES})


def init_backbone(cfg: FinetuneConfig, vocab_size: int | None) -> Init:
    """The backbone `cfg.init` names (see the module doc); `vocab_size` sizes a fresh model's embeddings."""
    from vlengine.models import VLBert

    path = cfg.init
    if path is not None and os.path.isfile(path):
        from vlengine.models.export import backbone_state, build_backbone, head_state, read_export

        info, tensors = read_export(path)
        if info.task:
            raise ConfigError(f"{path} is already fine-tuned for {info.task} (its backbone is under "
                              "'backbone.'): start from a pretraining export, or evaluate it with vlengine evaluate")
        backbone = build_backbone(info, _export_config(info, cfg.model.settings, cfg.source))
        missing, unexpected = backbone.load_state_dict(backbone_state(info, tensors), strict=False)
        if missing or unexpected:
            raise ConfigError(f"{path} does not match a {info.architecture}: missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]}")
        heads = {prefix: head_state(tensors, prefix) for prefix in ("mlm.", "itm.")}
        return Init(backbone, {p: h for p, h in heads.items() if h}, info.extra.get("vocab"),
                    f"{info.architecture} export {path} ({info.recipe or 'unknown'} recipe)")
    from vlengine.models import VLConfig

    # "auto" sizes: the vocabulary of the run's tokenizer; region classes are a pretraining head's, unused here
    settings = {k: v for k, v in cfg.model.settings.items() if v != "auto"}
    settings.setdefault("vocab_size", vocab_size)
    model_config = getattr(VLConfig, cfg.model.preset or "base")(**settings)
    backbone = VLBert(model_config)
    if path is None:
        return Init(backbone)
    from vlengine.models.weights import load_bert
    report = load_bert(backbone, path)
    return Init(backbone, description=f"BERT {path}: {len(report['loaded'])} tensors loaded, "
                                      f"{len(report['initialised'])} new")


def build_task_model(task: FinetuneTask, init: Init, num_answers: int | None = None) -> torch.nn.Module:
    """The task's model (vlengine.tasks.downstream) around `init.backbone`."""
    from vlengine.models.heads import ITMHead
    from vlengine.tasks.downstream import AnswerModel, GroundingModel, Nlvr2Model, RetrievalModel

    if task.name in ("vqa", "gqa"):
        model = AnswerModel(init.backbone, num_answers, head=task.head, loss=task.loss, task=task.name)
        mlm = init.heads.get("mlm.")
        if task.head_from_pretraining and task.head == "answer_slot" and mlm:
            # VL-BERT's released VQA setting: the slot is a masked token, which the MLM transform reads
            model.head.transform.load_state_dict({k[len("transform."):]: v for k, v in mlm.items()
                                                  if k.startswith("transform.")})
        return model
    if task.name == "nlvr2":
        return Nlvr2Model(init.backbone)
    if task.name == "refcoco":
        return GroundingModel(init.backbone, head=task.region_head, loss=task.loss)
    itm = None
    if task.head_from_pretraining and init.heads.get("itm."):
        itm = ITMHead(init.backbone.config)
        itm.load_state_dict(init.heads["itm."])
    return RetrievalModel(init.backbone, objective=task.retrieval_objective, negatives=task.negatives,
                          temperature=task.temperature, itm_head=itm)


def finetuned_metadata(model: torch.nn.Module, task: FinetuneTask, vocab_text: str, answers=None,
                       limits: dict | None = None) -> dict[str, str]:
    """The header of a fine-tuned export: architecture, config, vocabulary, task settings, answers and the
    input limits (max_text_len, max_regions) it was trained with."""
    from vlengine.models.export import export_info_of

    extra = {"vocab": vocab_text, "task_config": json.dumps(to_plain(task), sort_keys=True),
             "input_limits": json.dumps(limits or {"max_text_len": 64, "max_regions": None})}
    if answers is not None:
        extra["answers"] = json.dumps(answers.answers)
    return export_info_of(model.backbone, "backbone.", task=task.name, extra=extra).metadata()


DEFAULT_LIMITS = {"max_text_len": 64, "max_regions": None}


def zero_shot_retrieval(info, tensors: dict, path: str):
    """Retrieval with a pretraining export's own ITM head, no fine-tuning (InterBERT's zero-shot setting);
    the dual encoder is CSS-BERT's own projections, or untrained otherwise (use full ITM ranking then)."""
    from vlengine.models.export import backbone_state, build_backbone, head_state

    itm = head_state(tensors, "itm.")
    if info.architecture == "InterBert":
        # its ITM head multiplies text [CLS] with an image summary; the retrieval model's reads the pooled output
        raise ConfigError(f"{path}: zero-shot ranking with InterBERT's two-input ITM head is not in vlengine "
                          "evaluate yet (the pretraining run's own evaluation reports it: eval.retrieval_images)")
    if not itm:
        raise ConfigError(f"{path} is a pretraining export without an ITM head (its recipe trained none): "
                          "zero-shot retrieval needs one; fine-tune it with vlengine finetune --task retrieval")
    backbone = build_backbone(info)
    backbone.load_state_dict(backbone_state(info, tensors))
    task = FinetuneTask(name="retrieval", retrieval_objective="itm")
    model = build_task_model(task, Init(backbone, {"itm.": itm}))
    return model, task, None, info.extra.get("vocab"), dict(DEFAULT_LIMITS)


def load_finetuned(path: str, task_name: str | None = None):
    """(task model, FinetuneTask, answers or None, vocab text, input limits) of a fine-tuned export, from the
    file alone; a pretraining export with an ITM head gives zero-shot retrieval (task_name "retrieval")."""
    from vlengine._config import from_mapping
    from vlengine.metrics.vqa import AnswerVocab
    from vlengine.models.export import build_backbone, read_export

    info, tensors = read_export(path)
    if not info.task and task_name == "retrieval":
        return zero_shot_retrieval(info, tensors, path)
    if not info.task or "task_config" not in info.extra:
        raise ConfigError(f"{path} is a pretraining export (no task head): fine-tune it first with vlengine "
                          "finetune (or evaluate its ITM head zero-shot: --task retrieval)")
    task = from_mapping(FinetuneTask, json.loads(info.extra["task_config"]), path, "task")
    answers = AnswerVocab(json.loads(info.extra["answers"])) if "answers" in info.extra else None
    model = build_task_model(replace(task, head_from_pretraining=False), Init(build_backbone(info)),
                             len(answers) if answers is not None else None)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ConfigError(f"{path} does not match a {task.name} model: missing {sorted(missing)[:3]}, "
                          f"unexpected {sorted(unexpected)[:3]}")
    limits = json.loads(info.extra["input_limits"]) if "input_limits" in info.extra else dict(DEFAULT_LIMITS)
    return model, task, answers, info.extra.get("vocab"), limits
