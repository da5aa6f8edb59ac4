"""One pretraining run from a PretrainConfig: model, objective, data, DeepSpeed, evaluation."""

from __future__ import annotations

import datetime
import os
import time

import torch

from .config import PretrainConfig
from .data_setup import make_train_loader, resolve_data
from .engine import compute_dtype, init_distributed, load_deepspeed_config
from .loop import TrainResult, train
from .main_eval import build_evaluator
from .qa_data import load_questions
from .threads import available_cores, local_ranks, rank_threads, use_rank_threads


# How long the other ranks wait for rank 0's detector stage. The process group's timeout (DeepSpeed's
# default: 10 minutes) is sized for one collective, not for a stage of many steps: 1,200 steps on a
# 2-core machine shared with other jobs took over 10 minutes, and rank 1 died in the barrier with a
# gloo timeout. A rank 0 that fails still ends the run: its launcher stops the others (local_ranks.py).
STAGE_WAIT = datetime.timedelta(hours=24)


def model_config(cfg: PretrainConfig, tokenizer, manifest: dict):
    """VLConfig from the `model` section; "auto" sizes come from the corpus (vocabulary, region classes)."""
    return cfg.model.build(tokenizer.vocab_size, manifest.get("classes"))


def run_pretraining(cfg: PretrainConfig, log=print) -> TrainResult:
    """Build everything the config names and train; returns the loop's result (eval metrics included)."""
    from vlengine.data import load_tokenizer

    from .recipes import build_objective

    rank, world = init_distributed()
    use_rank_threads(cfg.train.threads)   # before the model: the detector stage trains inside build_objective
    ds_config = load_deepspeed_config(cfg.deepspeed_config)  # read and checked with the config file
    micro = int(ds_config.get("train_micro_batch_size_per_gpu", 0))
    if micro <= 0:
        raise ValueError("the deepspeed config must set train_micro_batch_size_per_gpu")
    start = time.time()
    paths = resolve_data(cfg.data)
    tokenizer = load_tokenizer(paths.vocab)
    if rank == 0:
        log(f"data: {paths.root or paths.train} (ready in {time.time() - start:.1f}s)")
    torch.manual_seed(cfg.train.seed)  # model init is part of the run's identity
    questions = load_questions(cfg.data, paths, tokenizer, cfg.source)
    if questions is not None and rank == 0:
        log(f"image QA: {len(questions.dataset)} questions, {questions.num_answers} answer classes, "
            f"{cfg.data.qa_ratio:g} question batch(es) per caption batch")
    _detector_stage_on_rank_zero(cfg, paths.root, rank, world, log)
    objective, mixer = build_objective(cfg, model_config(cfg, tokenizer, paths.manifest), tokenizer,
                                       num_answers=questions.num_answers if questions is not None else None,
                                       corpus_dir=paths.root, log=log if rank == 0 else None)
    if cfg.model.bert_checkpoint:
        # Text embeddings, encoder, pooler and the MLM (and NSP) heads start from a local BERT directory.
        from vlengine.models.weights import load_bert
        report = load_bert(objective.model, cfg.model.bert_checkpoint, mlm_head=objective.mlm,
                           nsp_head=getattr(objective, "nsp", None))
        if rank == 0:
            log(f"initialised {len(report['loaded'])} tensors from BERT {cfg.model.bert_checkpoint}; "
                f"{len(report['initialised'])} new")
    loader = make_train_loader(cfg.data, paths, micro, cfg.train.seed, rank, world,
                               questions=questions.dataset if questions is not None else None)
    # The grounding evaluation masks words with and without the image: it needs a model that
    # accepts text-only rows (VL-BERT and CSS-BERT; InterBERT and SemVLP always take regions).
    evaluate = build_evaluator(cfg.eval, paths, tokenizer, compute_dtype(ds_config),
                               image_transform=cfg.data.image_transform(flip=False)) \
        if cfg.recipe in ("vlbert", "cssbert") else None
    return train(objective, loader, ds_config, cfg.train, mixer, evaluate, run_config=cfg.to_dict(),
                 export_metadata=export_metadata(objective.model, paths.vocab, recipe=cfg.recipe,
                                                 visual=cfg.model.visual))


def _detector_stage_on_rank_zero(cfg: PretrainConfig, corpus_dir, rank: int, world: int, log) -> None:
    """The tiny trunk's detector stage (model.visual.weights: corpus), built once by rank 0 with the cores
    of every rank on its machine while the others wait; each then reads the kept file. Built by every
    rank, each would train the same file with its own share of the cores: twice the wall time on 2 ranks."""
    from .visual_section import CORPUS_WEIGHTS

    visual = cfg.model.visual
    if world == 1 or visual is None or visual.weights != CORPUS_WEIGHTS:
        return   # decided from the config alone: every rank meets rank_zero_first below, or none does
    visual.check_corpus(corpus_dir)   # every rank refuses a wrong folder, none waits for rank 0

    def build() -> None:
        share = rank_threads(cfg.train.threads) or torch.get_num_threads()
        torch.set_num_threads(min(available_cores(), share * local_ranks(os.environ)))
        try:
            visual.corpus_stage(corpus_dir, cfg.train.seed, log)   # returns at once when the file is kept
        finally:
            use_rank_threads(cfg.train.threads)

    # ranks of other machines without the file build their own copy afterwards (the same seed)
    rank_zero_first(build, rank)


def rank_zero_first(build, rank: int, timeout: datetime.timedelta = STAGE_WAIT) -> None:
    """Rank 0 runs ``build()`` while every other rank waits for it, up to ``timeout`` (not the
    process group's own timeout: a gloo group of its own carries it). Every rank must call it."""
    import torch.distributed as dist

    group = dist.new_group(backend="gloo", timeout=timeout)
    try:
        if rank == 0:
            build()
        dist.barrier(group=group)
    finally:
        dist.destroy_process_group(group)


def export_metadata(backbone, vocab_path: str, prefix: str = "model.", visual=None, **fields) -> dict[str, str]:
    """The exported file's header: architecture, model config, the WordPiece vocabulary the model
    was trained with and its visual front-end's architecture (end to end, ``visual``: the
    VisualSection), so the file alone is enough to fine-tune or evaluate it."""
    from vlengine.models.export import export_info_of

    from .visual_section import export_extra

    with open(vocab_path, encoding="utf-8") as f:
        extra = {"vocab": f.read(), **export_extra(visual)}
    return export_info_of(backbone, prefix, extra=extra, **fields).metadata()

