"""From a model's per-example predictions (gathered on rank 0 by example id) to the task's official
metric and submission file, with the metrics of ``vlengine.metrics`` run on the converted records.

    VQA v2  class -> answer string; ``vqa_accuracy`` (overall / per answer type); results JSON
            ``[{"question_id", "answer"}]``
    GQA     class -> answer string; ``gqa_accuracy`` (balanced questions); ``[{"questionId", "prediction"}]``
    NLVR2   1/0 -> True/False; ``nlvr2_metrics`` (accuracy, consistency); CSV ``identifier,True|False``
    RefCOCO region -> box; ``grounding_accuracy`` (with its IoU settings) beside the chance level of a
            random candidate and the candidates' upper bound; ``[{"sent_id", "box" [x, y, w, h]}]``
Splits without answers (test) give the submission only.
"""

from __future__ import annotations

import json
import os
from typing import Mapping

from vlengine.metrics.gqa import gqa_accuracy, to_submission
from vlengine.metrics.grounding import candidate_bounds, grounding_accuracy
from vlengine.metrics.nlvr2 import nlvr2_metrics, write_predictions_csv
from vlengine.metrics.vqa import to_results, vqa_accuracy


def _write_json(path: str, obj) -> str:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)
    os.replace(tmp, path)
    return path


def answers_from_classes(predictions: Mapping, vocab) -> dict:
    """{example id: class index} -> {example id: answer string}."""
    out = {}
    for key, cls in predictions.items():
        if not 0 <= int(cls) < len(vocab):
            raise ValueError(f"prediction for {key!r} is class {cls}, outside the {len(vocab)} answers")
        out[key] = vocab.answers[int(cls)]
    return out


def boxes_from_regions(predictions: Mapping, dataset) -> dict:
    """{sentence id: chosen region} -> {sentence id: its box as corners [x1, y1, x2, y2]}."""
    out = {}
    for index in range(len(dataset)):
        key = dataset.example_id(index)
        if key in predictions:
            region = int(predictions[key])
            if not dataset.candidates(index)[region]:
                raise ValueError(f"prediction for {key!r} is region {region}, not one of the candidates")
            out[key] = [float(v) for v in dataset.region_boxes(index)[region]]
    return out


def _grounding_metrics(boxes: Mapping, dataset) -> dict:
    truth = {dataset.example_id(i): dataset.gt_box(i) for i in range(len(dataset))}
    settings = {"convention": dataset.iou_convention, "comparison": dataset.iou_comparison}
    metrics = grounding_accuracy(boxes, truth, **settings)
    bounds = candidate_bounds((dataset.region_boxes(i)[dataset.candidates(i)] for i in range(len(dataset))),
                              truth.values(), **settings)
    return {**metrics, "chance_accuracy": bounds["chance"], "upper_bound": bounds["upper_bound"],
            "track": dataset.track}


def official_metrics(task: str, predictions: Mapping, dataset) -> dict | None:
    """The official metric of ``predictions`` (answers for VQA/GQA, 0/1 for NLVR2, boxes for RefCOCO) on the dataset's
    records; None when the split carries no answers."""
    records = [dataset.record(i) for i in range(len(dataset))]
    if task == "vqa":
        if "answers" not in records[0]:
            return None
        result = vqa_accuracy(predictions, records)
        return {"overall": result["overall"], "perAnswerType": result["perAnswerType"]}
    if task == "gqa":
        if "answer" not in records[0]:
            return None
        return gqa_accuracy(predictions, {r["id"]: r for r in records})
    if task == "nlvr2":
        if "label" not in records[0]:
            return None
        return nlvr2_metrics({k: bool(v) for k, v in predictions.items()}, records)
    if task == "refcoco":
        return _grounding_metrics(predictions, dataset)
    raise ValueError(f"no official metric for task {task!r} here (retrieval: evaluate_retrieval)")


def write_submission(task: str, predictions: Mapping, path: str) -> str:
    """The prediction file in the format the task's evaluation server or script reads."""
    if task == "vqa":
        return _write_json(path, to_results(predictions))
    if task == "gqa":
        return _write_json(path, to_submission(predictions))
    if task == "nlvr2":
        return write_predictions_csv(path, {k: bool(v) for k, v in predictions.items()})
    if task == "refcoco":
        return _write_json(path, [{"sent_id": k, "box": [x1, y1, x2 - x1, y2 - y1]}
                                  for k, (x1, y1, x2, y2) in predictions.items()])
    raise ValueError(f"no submission format for task {task!r}")
