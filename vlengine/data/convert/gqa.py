"""GQA's official question files -> an annotation set.

``{split}_balanced_questions.json`` is a dict question id -> ``{"imageId",
"question", "answer", "fullAnswer", "isBalanced", "types": {"structural",
"semantic", "detailed"}, ...}`` (test/challenge files have no answers). The
fields the official evaluator reads keep their names, so the records feed
``vlengine.metrics.gqa`` directly. The whole file is parsed at once (the
balanced training file is about 1M questions; the unbalanced "all" files come in
parts, converted one by one).
"""

from __future__ import annotations

from typing import Iterator

from .annotation_base import AnnotationSource, ImageIdTemplate, load_json_file, require
from .base import ConversionError

KEPT = ("answer", "fullAnswer", "isBalanced", "types")


class GqaSource(AnnotationSource):
    name = "gqa"
    task = "gqa"

    def __init__(self, questions: str, image_id_template: str | None = None):
        self.questions = questions
        self.image_id = ImageIdTemplate(image_id_template, ("image_id",))

    def paths(self) -> list[str]:
        return [self.questions]

    def examples(self) -> Iterator[tuple[dict, str]]:
        data = load_json_file(self.questions)
        if not isinstance(data, dict):
            raise ConversionError(f"{self.questions}: expected a JSON object keyed by question id")
        for qid, q in data.items():
            where = f"{self.questions}: question {qid}"
            image = require(q, "imageId", (str, int), where)
            record = {"id": str(qid), "images": [self.image_id(where, image_id=image)],
                      "text": require(q, "question", str, where)}
            if "answer" in q:
                require(q, "answer", str, where)
            if "types" in q:
                require(q, "types", dict, where)
            record.update({k: q[k] for k in KEPT if k in q})
            yield record, where
