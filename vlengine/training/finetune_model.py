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
    visual: object = None                       # the backbone's front-end (a VisualSection), None: features


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


def _export_visual(cfg: FinetuneConfig, info, path: str):
    """The front-end of an export-initialised backbone: the export's own (its tensors load into it), or
    model.visual's for an export of precomputed-feature pretraining (a new front-end, its own weights)."""
    from .visual_section import visual_of_export

    own = visual_of_export(info, path)
    wanted = cfg.model.visual
    if own is not None and wanted is not None and own.export_entry() != wanted.export_entry():
        raise ConfigError(f"{cfg.source}: model.visual differs from the front-end {path} was trained with "
                          f"({own.export_entry()}); leave model.visual unset to use the export's")
    if own is None and wanted is not None and info.architecture != "VLBert":
        raise ConfigError(f"{cfg.source}: model.visual (an end-to-end front-end) runs with VL-BERT; {path} holds "
                          f"a {info.architecture}")
    if own is None and wanted is not None and info.config.region_feature_size != wanted.feature_size:
        raise ConfigError(f"{cfg.source}: {path} reads {info.config.region_feature_size}-d region features, the "
                          f"{wanted.trunk} front-end of model.visual gives {wanted.feature_size}-d")
    return own, wanted if own is None else None


def init_backbone(cfg: FinetuneConfig, vocab_size: int | None, corpus_dir: str | None = None, log=print) -> Init:
    """The backbone `cfg.init` names (see the module doc); `vocab_size` sizes a fresh model's embeddings;
    `corpus_dir`: where model.visual's tiny trunk trains its detector stage (weights "corpus")."""
    from vlengine.models import VLBert

    path = cfg.init
    if path is not None and os.path.isfile(path):
        from vlengine.models.export import backbone_state, head_state, read_export

        from .visual_section import backbone_with_visual

        info, tensors = read_export(path)
        if info.task:
            raise ConfigError(f"{path} is already fine-tuned for {info.task} (its backbone is under "
                              "'backbone.'): start from a pretraining export, or evaluate it with vlengine evaluate")
        own, new = _export_visual(cfg, info, path)
        backbone = backbone_with_visual(info, _export_config(info, cfg.model.settings, cfg.source), own)
        missing, unexpected = backbone.load_state_dict(backbone_state(info, tensors), strict=False)
        if missing or unexpected:
            raise ConfigError(f"{path} does not match a {info.architecture}: missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]}")
        if new is not None:
            backbone.visual = new.build(corpus_dir, cfg.train.seed, log)
        heads = {prefix: head_state(tensors, prefix) for prefix in ("mlm.", "itm.")}
        return Init(backbone, {p: h for p, h in heads.items() if h}, info.extra.get("vocab"),
                    f"{info.architecture} export {path} ({info.recipe or 'unknown'} recipe)", own or new)
    from vlengine.models import VLConfig

    # "auto" sizes: the vocabulary of the run's tokenizer; region classes are a pretraining head's, unused here
    settings = {k: v for k, v in cfg.model.settings.items() if v != "auto"}
    settings.setdefault("vocab_size", vocab_size)
    visual = cfg.model.visual
    if visual is not None:
        settings.setdefault("region_feature_size", visual.feature_size)
    model_config = getattr(VLConfig, cfg.model.preset or "base")(**settings)
    backbone = VLBert(model_config, visual=visual.build(corpus_dir, cfg.train.seed, log) if visual else None)
    if path is None:
        return Init(backbone, visual=visual)
    from vlengine.models.weights import load_bert
    report = load_bert(backbone, path)
    return Init(backbone, description=f"BERT {path}: {len(report['loaded'])} tensors loaded, "
                                      f"{len(report['initialised'])} new", visual=visual)


def build_task_model(task: FinetuneTask, init: Init, num_answers: int | None = None) -> torch.nn.Module:
    """The task's model (vlengine.tasks.downstream) around `init.backbone`."""
    from vlengine.models.heads import ITMHead
    from vlengine.tasks.downstream import AnswerModel, GroundingModel, Nlvr2Model, RetrievalModel, VcrModel

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
    if task.name == "vcr":
        return VcrModel(init.backbone, loss=task.vcr_loss, region_class_weight=task.region_class_weight)
    itm = None
    if task.head_from_pretraining and init.heads.get("itm."):
        itm = ITMHead(init.backbone.config)
        itm.load_state_dict(init.heads["itm."])
    return RetrievalModel(init.backbone, objective=task.retrieval_objective, negatives=task.negatives,
                          temperature=task.temperature, itm_head=itm)


def finetuned_metadata(model: torch.nn.Module, task: FinetuneTask, vocab_text: str, answers=None,
                       limits: dict | None = None, visual=None) -> dict[str, str]:
    """The header of a fine-tuned export: architecture, config, vocabulary, task settings, answers, the
    input limits (max_text_len, max_regions, the image transform) it was trained with and its visual
    front-end's architecture (``visual``, a VisualSection; None: precomputed features)."""
    from vlengine.models.export import export_info_of

    from .visual_section import export_extra

    extra = {"vocab": vocab_text, "task_config": json.dumps(to_plain(task), sort_keys=True),
             "input_limits": json.dumps(limits or {"max_text_len": 64, "max_regions": None}), **export_extra(visual)}
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
    from vlengine.models.export import read_export

    from .visual_section import backbone_with_visual, visual_of_export

    info, tensors = read_export(path)
    if not info.task and task_name == "retrieval":
        return zero_shot_retrieval(info, tensors, path)
    if not info.task or "task_config" not in info.extra:
        raise ConfigError(f"{path} is a pretraining export (no task head): fine-tune it first with vlengine "
                          "finetune (or evaluate its ITM head zero-shot: --task retrieval)")
    task = from_mapping(FinetuneTask, json.loads(info.extra["task_config"]), path, "task")
    answers = AnswerVocab(json.loads(info.extra["answers"])) if "answers" in info.extra else None
    backbone = backbone_with_visual(info, None, visual_of_export(info, path))
    model = build_task_model(replace(task, head_from_pretraining=False), Init(backbone),
                             len(answers) if answers is not None else None)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ConfigError(f"{path} does not match a {task.name} model: missing {sorted(missing)[:3]}, "
                          f"unexpected {sorted(unexpected)[:3]}")
    limits = json.loads(info.extra["input_limits"]) if "input_limits" in info.extra else dict(DEFAULT_LIMITS)
    return model, task, answers, info.extra.get("vocab"), limits
