"""One split of a downstream task, scored end to end: predictions over ranks, the official metric,
the submission file and ``metrics.json`` (what a fine-tuning run's evaluation and ``vlengine evaluate``
both call).

Files written on rank 0 into ``out_dir`` (when given), named by ``name`` (e.g. "val", "val_step000500"):
  ``{name}_predictions.json|csv``   the task's official submission format (VQA results JSON, GQA
                                    predictions JSON, NLVR2 CSV, RefCOCO boxes JSON, VCR leaderboard
                                    CSV); retrieval has none
  ``{name}_metrics.json``           the official metric (None for a split without answers)
"""

from __future__ import annotations

import os

from vlengine.atomic import write_json

from .evaluate import predict_sharded
from .official import answers_from_classes, boxes_from_regions, official_metrics, write_submission
from .retrieval_eval import evaluate_retrieval
from .sharding import _world
from .vcr_eval import score_vcr

SUBMISSION_SUFFIX = {"vqa": "predictions.json", "gqa": "predictions.json", "nlvr2": "predictions.csv",
                     "refcoco": "predictions.json"}


def headline(task: str, metrics: dict | None) -> dict[str, float]:
    """The few numbers a log line shows (percent)."""
    if not metrics:
        return {}
    if task == "vqa":
        return {"vqa_acc": metrics["overall"],
                **{f"vqa_acc_{k.replace('/', '_')}": v for k, v in metrics["perAnswerType"].items()}}
    if task == "gqa":
        return {"gqa_acc": metrics["accuracy"]}
    if task == "nlvr2":
        return {"nlvr2_acc": metrics["accuracy"], "nlvr2_consistency": metrics["consistency"]}
    if task == "vcr":
        return {f"vcr_{k}": metrics[k] for k in ("q_a", "qa_r", "q_ar") if k in metrics}
    if task == "refcoco":
        return {"refcoco_acc": metrics["accuracy"], "refcoco_chance_acc": metrics["chance_accuracy"],
                "refcoco_upper_bound": metrics["upper_bound"]}
    out = {f"{mode}_itm_passes": float(metrics[f"{mode}_itm_pairs"]) for mode in ("full", "two_stage")
           if f"{mode}_itm_pairs" in metrics}
    for mode in ("full", "two_stage", "dual_encoder"):
        if mode in metrics:
            out[f"{mode}_r_mean"] = metrics[mode]["r_mean"]
            for direction, row in metrics[mode].items():
                if isinstance(row, dict) and "R@1" in row:
                    out[f"{mode}_{direction}_R1"] = row["R@1"]
    return out


def _write_metrics(out_dir: str, name: str, task: str, examples: int, metrics: dict | None) -> None:
    write_json(os.path.join(out_dir, f"{name}_metrics.json"), {"task": task, "examples": examples, "metrics": metrics},
               indent=1)


def score_split(model, dataset, task: str, *, answers=None, batch_size: int = 128, device="cpu",
                cast=lambda b: b, out_dir: str | None = None, name: str = "val", retrieval_mode: str = "both",
                retrieval_k: int = 128, vcr_subtasks=("q_a", "qa_r"), vcr_rationale_model=None) -> dict | None:
    """The official metrics of ``model`` on ``dataset`` on rank 0 (None on the other ranks).

    ``answers``: the AnswerVocab of VQA / GQA models (class -> answer string); ``vcr_subtasks``: what a
    VCR model was trained for, ``vcr_rationale_model`` a second model that scores QA->R (``vcr_eval``).
    """
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    if task == "vcr":
        metrics = score_vcr(model, dataset, vcr_subtasks, out_dir=out_dir, name=name, batch_size=batch_size,
                            device=device, cast=cast, rationale_model=vcr_rationale_model)
        if out_dir and _world()[0] == 0:
            _write_metrics(out_dir, name, task, dataset.questions, metrics)
        return metrics
    if task == "retrieval":
        metrics = evaluate_retrieval(model, dataset, mode=retrieval_mode, k=min(retrieval_k, dataset.num_images),
                                     batch_size=batch_size, device=device, cast=cast)
        if metrics is not None and out_dir:
            _write_metrics(out_dir, name, task, len(dataset), metrics)
        return metrics
    predictions = predict_sharded(model, dataset, batch_size=batch_size, device=device, cast=cast)
    if predictions is None:
        return None
    if task in ("vqa", "gqa"):
        if answers is None:
            raise ValueError(f"scoring {task} needs the answer vocabulary of the model's classes")
        predictions = answers_from_classes(predictions, answers)
    if task == "refcoco":
        predictions = boxes_from_regions(predictions, dataset)
    metrics = official_metrics(task, predictions, dataset)
    if out_dir:
        write_submission(task, predictions, os.path.join(out_dir, f"{name}_{SUBMISSION_SUFFIX[task]}"))
        _write_metrics(out_dir, name, task, len(dataset), metrics)
    return metrics
