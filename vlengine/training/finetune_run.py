"""One fine-tuning run from a FinetuneConfig: data, model, the pretraining loop, the official evaluation.

The loop is pretraining's (vlengine.training.loop.train): the same DeepSpeed engine, ZeRO stages and
precisions, progress display, TensorBoard, plots, crash-safe checkpoints and exact resume (the data
position and RNG states per rank are in every checkpoint). The task's evaluation runs at eval_every and
at the end, over all ranks (every example scored once) with the official metric, and writes the
submission file and metrics JSON into <output_dir>/eval/.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

from vlengine._config import ConfigError

from .engine import compute_dtype, init_distributed
from .finetune_config import FinetuneConfig
from .finetune_model import build_task_model, finetuned_metadata, init_backbone
from .loop import TrainResult, train
from .task_mixing import TaskMixer

ANSWERS_FILE = "answers.json"
VOCAB_FILE = "vocab.txt"


@dataclass
class TaskData:
    train: str
    val: str | None
    images: str
    val_images: str
    vocab: str | None
    corpus_dir: str | None = None    # the embedded corpus (where a tiny front-end's detector stage trains)


def resolve_task_data(cfg: FinetuneConfig) -> TaskData:
    """Annotation sets, stores and vocabulary of the run (the embedded corpus's VQA sets built on first use)."""
    data = cfg.data
    if data.corpus == "embedded":
        from vlengine.data import ensure_embedded_corpus
        from vlengine.tasks.downstream.embedded_sets import (ensure_embedded_refcoco, ensure_embedded_retrieval,
                                                             ensure_embedded_vqa)
        from vlengine.tasks.downstream.embedded_vcr import ensure_embedded_vcr

        root = ensure_embedded_corpus(seed=data.corpus_seed)
        if cfg.task.name == "retrieval":
            sets = ensure_embedded_retrieval(root)
            (train, images), (val, val_images) = sets["train"], sets["test"]
        elif cfg.task.name in ("refcoco", "vcr"):
            sets = (ensure_embedded_refcoco if cfg.task.name == "refcoco" else ensure_embedded_vcr)(root)
            (train, images), (val, val_images) = sets["train"], sets["val"]
        else:
            sets = ensure_embedded_vqa(root)
            train, images, val, val_images = sets["train"], f"{root}/train", sets["heldout"], f"{root}/heldout"
        return TaskData(data.train or train, data.val or val, data.images or images, data.val_images or val_images,
                        data.vocab or os.path.join(root, VOCAB_FILE), root)
    return TaskData(data.train, data.val, data.images, data.val_images or data.images, data.vocab)


def _vocab_file(cfg: FinetuneConfig, paths: TaskData, export_vocab: str | None, rank: int) -> str:
    """The WordPiece vocabulary the model reads: the data's, which must equal the one an export carries."""
    if paths.vocab is None and export_vocab is None:
        raise ConfigError(f"{cfg.source}: no vocabulary: set data.vocab (the init has none)")
    if paths.vocab is not None:
        with open(paths.vocab, encoding="utf-8") as f:
            text = f.read()
        if export_vocab is not None and text.split() != export_vocab.split():
            raise ConfigError(f"{cfg.source}: data.vocab {paths.vocab} is not the vocabulary {cfg.init} was trained "
                              "with (leave data.vocab unset to use the export's own)")
        return paths.vocab
    out = cfg.train.output_dir or "."
    path = os.path.join(out, VOCAB_FILE)
    if rank == 0:
        from vlengine.atomic import write_text
        os.makedirs(out, exist_ok=True)
        write_text(path, export_vocab)
    torch.distributed.barrier()
    return path


def answer_vocab(cfg: FinetuneConfig, train_set, rank: int):
    """VQA: built the field's way from the train annotations (normalised multiple-choice answers of at
    least task.min_answer_count questions); GQA: the answers as given. data.answers loads a saved one."""
    from vlengine.metrics.vqa import AnswerVocab

    if cfg.data.answers:
        return AnswerVocab.load(cfg.data.answers)
    records = [train_set[i] for i in range(len(train_set))]
    vocab = AnswerVocab.for_task(cfg.task.name, records, cfg.task.min_answer_count)
    if len(vocab) == 0:
        raise ConfigError(f"{cfg.source}: no answer is given for {cfg.task.min_answer_count} or more questions of "
                          f"{cfg.data.train or 'the train split'} (lower task.min_answer_count)")
    if rank == 0 and cfg.train.output_dir:
        os.makedirs(cfg.train.output_dir, exist_ok=True)
        vocab.save(os.path.join(cfg.train.output_dir, ANSWERS_FILE))
    return vocab


def _image_transform(limits: dict):
    """End to end: the raw-image transform the limits record (FinetuneData.image_limits), else None."""
    if "image_normalisation" not in limits:
        return None
    from vlengine.data.images import ImageTransform
    return ImageTransform(limits["image_min_size"], limits["image_max_size"], limits["image_normalisation"])


def make_dataset(task, annotations, store: str, tokenizer, limits: dict, answers=None):
    """The task's dataset; `limits`: max_text_len and max_regions (the run's data settings), and for an
    end-to-end model the image transform's settings (then the store's images feed the front-end)."""
    from vlengine.tasks.downstream import (GqaDataset, GroundingDataset, Nlvr2Dataset, RetrievalDataset, VcrDataset,
                                           VqaDataset)

    common = {"max_text_len": limits["max_text_len"], "max_regions": limits["max_regions"]}
    if task.name in ("vqa", "gqa"):
        cls = VqaDataset if task.name == "vqa" else GqaDataset
        return cls(annotations, store, tokenizer, answers, answer_slot=task.head == "answer_slot",
                   with_image=task.with_image, **common)
    if task.name == "nlvr2":
        return Nlvr2Dataset(annotations, store, tokenizer, **common)
    if task.name == "vcr":
        return VcrDataset(annotations, store, tokenizer, task.vcr_subtask_names, with_image=task.with_image,
                          image_transform=_image_transform(limits) if task.with_image else None, **common)
    if task.name == "refcoco":
        return GroundingDataset(annotations, store, tokenizer, track=task.track, iou_convention=task.iou_convention,
                                iou_comparison=task.iou_comparison, region_features=task.with_image,
                                image_transform=_image_transform(limits), **common)
    return RetrievalDataset(annotations, store, tokenizer, **common)


def run_finetuning(cfg: FinetuneConfig, log=print) -> TrainResult:
    """Build everything the config names, train, evaluate; returns the loop's result."""
    from vlengine.data import load_tokenizer
    from vlengine.data.annotations import open_annotations
    from vlengine.data.loading import ResumableStream
    from vlengine.data.loading.sampling import BatchPlan
    from vlengine.tasks.downstream import collate_for, head_lr_param_groups
    from vlengine.tasks.downstream.score_split import headline, score_split

    rank, world = init_distributed()
    ds_config = cfg.deepspeed_config
    micro = int(ds_config["train_micro_batch_size_per_gpu"])
    start = time.time()
    paths = resolve_task_data(cfg)
    torch.manual_seed(cfg.train.seed)  # model init is part of the run's identity
    # a fresh or BERT-initialised model is sized to the data's vocabulary; an export brings its own
    init = init_backbone(cfg, None if paths.vocab is None else load_tokenizer(paths.vocab).vocab_size,
                         corpus_dir=paths.corpus_dir, log=log if rank == 0 else (lambda *_: None))
    vocab_path = _vocab_file(cfg, paths, init.vocab_text, rank)
    tokenizer = load_tokenizer(vocab_path)
    if init.backbone.config.vocab_size < tokenizer.vocab_size:
        raise ConfigError(f"{cfg.source}: the vocabulary has {tokenizer.vocab_size} words, the model's embeddings "
                          f"{init.backbone.config.vocab_size}")
    train_annotations = open_annotations(paths.train)
    answers = answer_vocab(cfg, train_annotations, rank) if cfg.task.name in ("vqa", "gqa") else None
    limits = {"max_text_len": cfg.data.max_text_len, "max_regions": cfg.data.max_regions,
              **(cfg.data.image_limits() if init.visual is not None else {})}
    train_set = make_dataset(cfg.task, train_annotations, paths.images, tokenizer, limits, answers)
    val_set = make_dataset(cfg.task, paths.val, paths.val_images, tokenizer, limits, answers) if paths.val else None
    model = build_task_model(cfg.task, init, len(answers) if answers is not None else None)
    if rank == 0:
        log(f"{cfg.task.name}: {len(train_set)} train examples, {len(val_set) if val_set else 0} val"
            + (f", {len(answers)} answers" if answers is not None else "") + f"; init: {init.description}"
            + ("" if cfg.task.with_image else "; region features zeroed, boxes kept (geometry-only baseline)"
               if cfg.task.name == "refcoco" else "; image and grounding removed (text-only baseline)"
               if cfg.task.name == "vcr" else "; images removed (question-only baseline)")
            + f" (ready in {time.time() - start:.1f}s)")
    plan = BatchPlan(len(train_set), batch_size=micro, rank=rank, world_size=world, seed=cfg.train.seed,
                     drop_last=True)
    loader = ResumableStream(train_set, plan, collate_for(train_set), num_workers=cfg.data.num_workers)
    dtype = compute_dtype(ds_config)
    eval_dir = os.path.join(cfg.train.output_dir, "eval") if cfg.train.output_dir else None

    def evaluate(engine, step: int) -> dict:
        if val_set is None:
            return {}
        metrics = score_split(engine.module, val_set, cfg.task.name, answers=answers,
                              batch_size=cfg.eval.batch_size, device=engine.device,
                              cast=lambda b: b.to(b.input_ids.device, dtype), out_dir=eval_dir,
                              name=f"val_step{step:09d}", retrieval_mode=cfg.eval.retrieval_mode,
                              retrieval_k=cfg.eval.retrieval_k, vcr_subtasks=cfg.task.vcr_subtask_names)
        return headline(cfg.task.name, metrics)

    groups = head_lr_param_groups(model, cfg.train.lr, cfg.task.head_lr_multiplier, cfg.train.weight_decay)
    with open(vocab_path, encoding="utf-8") as f:
        metadata = finetuned_metadata(model, cfg.task, f.read(), answers, limits, init.visual)
    return train(model, loader, ds_config, cfg.train, TaskMixer({cfg.task.name: 1.0}, cfg.train.seed), evaluate,
                 run_config=cfg.to_dict(), groups=groups, export_metadata=metadata, what="fine-tuning")
