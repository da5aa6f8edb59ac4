"""The questions of image-QA pretraining (SemVLP): which annotation set, its answer classes, the dataset.

`data.qa: corpus` is the questions of an embedded-layout corpus folder (the
built-in corpus ships them in downstream/vqa_train.jsonl), converted on first use
into the VQA v2 annotation set beside the corpus that `vlengine finetune --task
vqa` reads too; any other value is a `vqa` or `gqa` annotation set whose images are in the
pretraining store. The answer classes are built the way fine-tuning builds them
(vlengine.metrics.vqa.AnswerVocab), so a pretrained QA head and a fine-tuned
VQA head speak the same vocabulary on the same data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from vlengine._config import ConfigError

from .data_setup import DataPaths
from .sections import DataSection


@dataclass
class Questions:
    dataset: object      # vlengine.data.QuestionImageDataset
    answers: object      # vlengine.metrics.vqa.AnswerVocab

    @property
    def num_answers(self) -> int:
        return len(self.answers)


def load_questions(data: DataSection, paths: DataPaths, tokenizer, source: str) -> Questions | None:
    """The question dataset `data.qa` names over the train store, or None without questions."""
    if data.qa is None or data.qa_ratio <= 0:
        return None
    from vlengine.data import QuestionImageDataset
    from vlengine.data.annotations import open_annotations
    from vlengine.metrics.vqa import AnswerVocab

    if data.qa == "corpus":
        from vlengine.tasks.downstream.embedded_sets import ensure_embedded_vqa
        if not (paths.root and os.path.isfile(os.path.join(paths.root, "downstream", "vqa_train.jsonl"))):
            raise ConfigError(f"{source}: data.qa 'corpus' reads the questions a corpus folder ships in "
                              f"downstream/vqa_train.jsonl; {paths.root or paths.train} has none: give data.qa "
                              "an annotation set (`vlengine data convert --from vqa|gqa`)")
        qa_path = ensure_embedded_vqa(paths.root)["train"]
    else:
        qa_path = data.qa
    try:
        annotations = open_annotations(qa_path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{source}: data.qa {qa_path}: {err}") from None
    if annotations.task not in ("vqa", "gqa"):
        raise ConfigError(f"{source}: data.qa {qa_path} holds task {annotations.task!r}: image-QA pretraining "
                          "reads vqa or gqa questions")
    records = [annotations[i] for i in range(len(annotations))]
    answers = AnswerVocab.for_task(annotations.task, records, data.qa_min_answer_count)
    if len(answers) == 0:
        raise ConfigError(f"{source}: data.qa {qa_path}: no answer is given for {data.qa_min_answer_count} or more "
                          "questions (lower data.qa_min_answer_count)")
    labels = np.asarray([answers.label(annotations.task, r) for r in records], dtype=np.int64)
    try:
        dataset = QuestionImageDataset(annotations, paths.train, tokenizer, labels,
                                       max_text_len=data.max_text_len, max_regions=data.max_regions)
    except (KeyError, ValueError) as err:
        raise ConfigError(f"{source}: data.qa {qa_path}: {str(err).strip(chr(34))}") from None
    return Questions(dataset, answers)
