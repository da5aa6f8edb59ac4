"""VQA v2's official files -> an annotation set.

``v2_OpenEnded_mscoco_{split}_questions.json``: ``{"data_subtype": "val2014",
"questions": [{"image_id", "question", "question_id"}]}``; for train/val also
``v2_mscoco_{split}_annotations.json``: ``{"annotations": [{"question_id",
"image_id", "question_type", "answer_type", "multiple_choice_answer",
"answers": [{"answer", "answer_confidence", "answer_id"}] x 10}]}``. The test
splits have questions only. Answers are stored as the raw strings: the answer
vocabulary and soft targets are built from them by ``vlengine.metrics.vqa``
(whose normalisation must be the official one), and the official evaluator
runs on the records unchanged.
"""

from __future__ import annotations

from typing import Iterator

from .annotation_base import AnnotationSource, ImageIdTemplate, load_json_file, require
from .base import ConversionError


class VqaSource(AnnotationSource):
    name = "vqa"
    task = "vqa"

    def __init__(self, questions: str, annotations: str | None = None, image_id_template: str | None = None):
        self.questions, self.annotations = questions, annotations
        self.image_id = ImageIdTemplate(image_id_template, ("image_id", "data_subtype"))

    def paths(self) -> list[str]:
        return [self.questions] + ([self.annotations] if self.annotations else [])

    def _annotations(self) -> dict:
        data = load_json_file(self.annotations)
        anns = require(data, "annotations", list, self.annotations)
        out = {}
        for i, ann in enumerate(anns):
            where = f"{self.annotations}: annotation {i}"
            qid = require(ann, "question_id", (int, str), where)
            where = f"{where} (question_id {qid})"
            answers = require(ann, "answers", list, where)
            if not answers:
                raise ConversionError(f"{where}: 'answers' is empty")
            texts = [require(a, "answer", str, f"{where}: answer {j}") for j, a in enumerate(answers)]
            if qid in out:
                raise ConversionError(f"{where}: question_id {qid} is annotated twice")
            out[qid] = {"answers": texts, "image_id": ann.get("image_id"),
                        "multiple_choice_answer": require(ann, "multiple_choice_answer", str, where),
                        "answer_type": require(ann, "answer_type", str, where),
                        "question_type": require(ann, "question_type", str, where)}
        return out

    def examples(self) -> Iterator[tuple[dict, str]]:
        data = load_json_file(self.questions)
        questions = require(data, "questions", list, self.questions)
        subtype = data.get("data_subtype", "")
        anns = self._annotations() if self.annotations else None
        for i, q in enumerate(questions):
            where = f"{self.questions}: question {i}"
            qid = require(q, "question_id", (int, str), where)
            where = f"{where} (question_id {qid})"
            image_id = require(q, "image_id", (int, str), where)
            record = {"id": str(qid), "images": [self.image_id(where, image_id=image_id, data_subtype=subtype)],
                      "text": require(q, "question", str, where), "question_id": qid, "image_id": image_id}
            if anns is not None:
                ann = anns.pop(qid, None)
                if ann is None:
                    raise ConversionError(f"{where}: no annotation in {self.annotations}")
                if ann.pop("image_id") not in (None, image_id):
                    raise ConversionError(f"{where}: image_id {image_id} differs from its annotation's in {self.annotations}")
                record.update(ann)
            yield record, where
        if anns:
            qid = next(iter(anns))
            raise ConversionError(f"{self.annotations}: {len(anns)} annotations have no question in {self.questions} "
                                  f"(e.g. question_id {qid})")
