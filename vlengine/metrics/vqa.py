"""VQA accuracy as the official evaluator computes it, the training soft targets, and the answer vocabulary.

Evaluation (:func:`vqa_accuracy`) follows ``vqaEval.py`` of the VQA API step by
step, so the numbers are the server's to the last reported digit:

1. every ground-truth answer and the prediction: newlines/tabs to spaces, strip;
2. only when the ten answers are not all identical (after step 1), the answers
   and the prediction go through punctuation handling and the
   digit/article/contraction map (:mod:`vqa_normalize`); with unanimous answers
   the prediction is compared as it is (so "Yes" scores 0 against ten "yes");
3. per question, the mean over the ten leave-one-out subsets of
   ``min(1, matches among the other nine / 3)``;
4. overall, per answer type and per question type: ``round(100 * mean, 2)``,
   with the sums taken in the annotation order the evaluator uses.

The evaluator leaves one answer *record* out at a time (records differ by
``answer_id``); here answers are left out by position, the same thing for the
official files.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

import numpy as np

from vlengine.batch import IGNORE_INDEX

from .vqa_normalize import clean_whitespace, normalize_answer, process_digit_article, process_punctuation

VOCAB_FORMAT = "vlengine-vqa-answers"
MIN_ANSWER_COUNT = 9  # the field's threshold: 3,129 answers for VQA v2 train+val


def _answer_texts(answers, where: str) -> list[str]:
    """Answer strings from the official ``[{"answer": ...}, ...]`` list (plain strings accepted too)."""
    if not isinstance(answers, (list, tuple)) or not answers:
        raise ValueError(f"{where}: 'answers' must be a non-empty list")
    out = []
    for i, a in enumerate(answers):
        text = a.get("answer") if isinstance(a, dict) else a
        if not isinstance(text, str):
            raise ValueError(f"{where}: answer {i} has no 'answer' string")
        out.append(text)
    return out


def question_accuracy(prediction: str, gt_answers: Sequence[str]) -> float:
    """One question's accuracy in [0, 1], the official way (steps 1-3 of the module doc)."""
    if not gt_answers:
        raise ValueError("question_accuracy: no ground-truth answers")
    gts = [clean_whitespace(a) for a in gt_answers]
    pred = clean_whitespace(prediction)
    if len(set(gts)) > 1:
        gts = [process_digit_article(process_punctuation(a)) for a in gts]
        pred = process_digit_article(process_punctuation(pred))
    matches = sum(a == pred for a in gts)
    # one term per left-out answer, in answer order, summed as the evaluator sums them
    per_subset = [min(1, float(matches - (a == pred)) / 3) for a in gts]
    return float(sum(per_subset)) / len(per_subset)


def vqa_accuracy(predictions: Mapping, annotations: Iterable[dict], ndigits: int = 2) -> dict:
    """The official evaluator's result for ``predictions`` on ``annotations``.

    Args:
        predictions: question id -> predicted answer string (see :func:`read_results`
            for the submission file). Must cover exactly the annotated questions, as
            the evaluator's ``loadRes`` requires.
        annotations: the official annotation records (``question_id``, ``answers``,
            ``answer_type``, ``question_type``), in file order.
        ndigits: rounding of the reported percentages (the evaluator's ``n=2``).

    Returns:
        ``{"overall", "perAnswerType", "perQuestionType", "perQuestion"}``, percentages
        rounded as the evaluator rounds them.
    """
    annotations = list(annotations)
    if not annotations:
        raise ValueError("vqa_accuracy: no annotations")
    ids = []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict) or ann.get("question_id") is None:
            raise ValueError(f"vqa_accuracy: annotation {i} has no 'question_id'")
        ids.append(ann["question_id"])
    missing = [q for q in ids if q not in predictions]
    extra = set(predictions) - set(ids)
    if missing or extra:
        raise ValueError(f"vqa_accuracy: predictions do not match the annotated questions: {len(missing)} missing "
                         f"(e.g. {missing[:3]}), {len(extra)} not annotated (e.g. {sorted(extra, key=str)[:3]})")
    acc_all: list[float] = []
    by_answer_type: dict[str, list[float]] = defaultdict(list)
    by_question_type: dict[str, list[float]] = defaultdict(list)
    per_question = {}
    for ann, qid in zip(annotations, ids):
        where = f"annotation of question {qid}"
        prediction = predictions[qid]
        if not isinstance(prediction, str):
            raise ValueError(f"vqa_accuracy: the prediction for question {qid} is not a string ({prediction!r})")
        acc = question_accuracy(prediction, _answer_texts(ann.get("answers"), where))
        acc_all.append(acc)
        by_question_type[ann.get("question_type")].append(acc)
        by_answer_type[ann.get("answer_type")].append(acc)
        per_question[qid] = round(100 * acc, ndigits)
    pct = lambda accs: round(100 * float(sum(accs)) / len(accs), ndigits)
    return {"overall": pct(acc_all),
            "perAnswerType": {t: pct(a) for t, a in by_answer_type.items()},
            "perQuestionType": {t: pct(a) for t, a in by_question_type.items()},
            "perQuestion": per_question}


def read_results(results, where: str = "results") -> dict:
    """The submission format ``[{"question_id": int, "answer": str}]`` (a list or a JSON file
    path) -> {question id: answer}; a duplicated question id is an error."""
    if isinstance(results, (str, os.PathLike)):
        where = str(results)
        with open(results, encoding="utf-8") as f:
            try:
                results = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(results, list):
        raise ValueError(f"{where}: expected a list of {{\"question_id\", \"answer\"}}")
    out = {}
    for i, r in enumerate(results):
        if not isinstance(r, dict) or "question_id" not in r or not isinstance(r.get("answer"), str):
            raise ValueError(f"{where}: result {i} is not {{\"question_id\": int, \"answer\": str}}")
        if r["question_id"] in out:
            raise ValueError(f"{where}: result {i}: question {r['question_id']} is answered twice")
        out[r["question_id"]] = r["answer"]
    return out


def to_results(predictions: Mapping) -> list[dict]:
    """{question id: answer} -> the submission list ``[{"question_id", "answer"}]``."""
    return [{"question_id": q, "answer": a} for q, a in predictions.items()]


# ---- training side -------------------------------------------------------------------------------

def leave_one_out_score(matches: int, num_answers: int = 10) -> float:
    """Mean over the leave-one-out subsets of min(1, matches among the others / 3): the
    subsets that leave out a matching answer see ``matches - 1``, the others ``matches``.
    With ten answers: 0, 0.3, 0.6, 0.9, 1.0 for 0, 1, 2, 3, >= 4 matches."""
    if not 0 <= matches <= num_answers or num_answers <= 0:
        raise ValueError(f"leave_one_out_score: need 0 <= matches <= num_answers, got {matches} of {num_answers}")
    return (matches * min(1.0, (matches - 1) / 3) + (num_answers - matches) * min(1.0, matches / 3)) / num_answers


def soft_scores(answers: Sequence[str]) -> dict[str, float]:
    """Training soft target of every distinct candidate among one question's answers:
    {normalised answer: leave-one-out score}. Answers are always normalised here (the
    vocabulary holds normalised answers), unlike the evaluator's unanimous case."""
    norm = [normalize_answer(a) for a in answers]
    counts: dict[str, int] = {}
    for a in norm:
        counts[a] = counts.get(a, 0) + 1
    return {a: leave_one_out_score(n, len(norm)) for a, n in counts.items()}


class AnswerVocab:
    """The classifier's answers: normalised strings <-> class indices, saved as JSON."""

    def __init__(self, answers: Sequence[str], counts: Sequence[int] | None = None, min_count: int | None = None):
        self.answers = list(answers)
        self.index = {a: i for i, a in enumerate(self.answers)}
        if len(self.index) != len(self.answers):
            raise ValueError("AnswerVocab: duplicate answers")
        self.counts = list(counts) if counts is not None else None
        self.min_count = min_count

    def __len__(self) -> int:
        return len(self.answers)

    def __contains__(self, answer: str) -> bool:
        return answer in self.index

    @classmethod
    def build(cls, annotations: Iterable[dict], min_count: int = MIN_ANSWER_COUNT) -> "AnswerVocab":
        """Every normalised ``multiple_choice_answer`` given for at least ``min_count`` distinct
        questions, most frequent first (ties alphabetical, so the order is reproducible)."""
        questions: dict[str, set] = defaultdict(set)
        for i, ann in enumerate(annotations):
            mc = ann.get("multiple_choice_answer") if isinstance(ann, dict) else None
            if not isinstance(mc, str):
                raise ValueError(f"annotation {i}: no 'multiple_choice_answer' string")
            questions[normalize_answer(mc)].add(ann.get("question_id", i))
        kept = sorted(((a, len(q)) for a, q in questions.items() if len(q) >= min_count), key=lambda x: (-x[1], x[0]))
        return cls([a for a, _ in kept], [n for _, n in kept], min_count)

    @classmethod
    def from_strings(cls, answers: Iterable[str], min_count: int = 1) -> "AnswerVocab":
        """Answers taken as they are (GQA: its evaluator compares strings exactly, so its
        classes are the raw answers), kept when given at least ``min_count`` times."""
        counts: dict[str, int] = defaultdict(int)
        for i, a in enumerate(answers):
            if not isinstance(a, str):
                raise ValueError(f"answer {i} is not a string ({a!r})")
            counts[a] += 1
        kept = sorted(((a, n) for a, n in counts.items() if n >= min_count), key=lambda x: (-x[1], x[0]))
        return cls([a for a, _ in kept], [n for _, n in kept], min_count)

    @classmethod
    def for_task(cls, task: str, records: Sequence[dict], min_count: int) -> "AnswerVocab":
        """The answer classes of a ``vqa`` (normalised multiple-choice answers, :meth:`build`) or ``gqa``
        (raw answers, :meth:`from_strings`) annotation set's records."""
        if task == "vqa":
            return cls.build(records, min_count=min_count)
        if task == "gqa":
            return cls.from_strings([r["answer"] for r in records if "answer" in r], min_count=min_count)
        raise ValueError(f"answer vocabularies are built for tasks vqa and gqa, not {task!r}")

    def label(self, task: str, record: dict) -> int:
        """The single answer class of a record (its multiple-choice answer for VQA, its answer for GQA):
        IGNORE_INDEX when it has none or it is outside the vocabulary."""
        answer = record.get("multiple_choice_answer") if task == "vqa" else record.get("answer")
        if not isinstance(answer, str):
            return IGNORE_INDEX
        return self.index.get(normalize_answer(answer) if task == "vqa" else answer, IGNORE_INDEX)

    def targets(self, answers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Sparse soft target of one question: (class indices int64, scores float32) of its
        in-vocabulary candidates with a non-zero score; out-of-vocabulary answers are dropped."""
        pairs = [(self.index[a], s) for a, s in soft_scores(answers).items() if a in self.index and s > 0]
        pairs.sort()
        return (np.asarray([i for i, _ in pairs], dtype=np.int64), np.asarray([s for _, s in pairs], dtype=np.float32))

    def save(self, path: str) -> str:
        obj = {"format": VOCAB_FORMAT, "version": 1, "min_count": self.min_count, "answers": self.answers,
               "counts": self.counts}
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=0)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str) -> "AnswerVocab":
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(obj, dict) or obj.get("format") != VOCAB_FORMAT:
            raise ValueError(f"{path}: not a {VOCAB_FORMAT} file")
        answers = obj.get("answers")
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise ValueError(f"{path}: 'answers' must be a list of strings")
        try:
            return cls(answers, obj.get("counts"), obj.get("min_count"))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
