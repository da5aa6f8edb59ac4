"""VQA v2 and GQA: a question about one image, answered by a classifier over an answer vocabulary.

Input text: with ``answer_slot=True`` (VL-BERT's readout) the pair
``[CLS] question [SEP] [MASK] [SEP]``, the answer slot in segment B, whose
hidden state the head reads; otherwise ``[CLS] question [SEP]`` (the
pooled-output heads of UNITER, LXMERT, SemVLP). Targets:

* VQA: the soft score of every in-vocabulary candidate (mean over the ten
  leave-one-out subsets of min(1, matches / 3), ``AnswerVocab.targets``).
* GQA: the gold answer as a class (``answer_label``) and as a one-hot score, so
  either cross-entropy or the soft-score BCE can train it; an answer outside the
  vocabulary has no class (IGNORE_INDEX) and an all-zero score row.
"""

from __future__ import annotations

import numpy as np

from vlengine.batch import IGNORE_INDEX
from vlengine.metrics.vqa import AnswerVocab

from .dataset_base import AnnotatedImageDataset


class AnswerDataset(AnnotatedImageDataset):
    """Shared by VQA and GQA (see the module doc); ``vocab`` maps answers to classes."""

    def __init__(self, annotations, store, tokenizer, vocab: AnswerVocab, answer_slot: bool = True,
                 max_text_len: int | None = 64, max_regions: int | None = None, with_image: bool = True):
        super().__init__(annotations, store, tokenizer, max_text_len, max_regions, with_image)
        if len(vocab) == 0:
            raise ValueError("the answer vocabulary is empty")
        self.vocab = vocab
        self.answer_slot = answer_slot

    @property
    def num_answers(self) -> int:
        return len(self.vocab)

    def _encode(self, question: str):
        if self.answer_slot:
            return self.tokenizer.encode_pair(question, "[MASK]", self.max_text_len)
        return self.tokenizer.encode(question, self.max_text_len)

    def __getitem__(self, key) -> dict:
        index = self._index(key)
        record = self.record(index)
        item = self._side(self._encode(record["text"]), 0, index)
        item["example_index"] = index
        if self.answer_slot:
            # the slot is the last [MASK]: B is only the slot, so it sits right before the final [SEP]
            item["answer_slot"] = int(np.nonzero(item["input_ids"] == self.tokenizer.mask_id)[0][-1])
        item.update(self._targets(record))
        return item

    def _targets(self, record: dict) -> dict:
        raise NotImplementedError


class VqaDataset(AnswerDataset):
    """VQA v2 (converted with ``--from vqa``); ``example_id`` is the official ``question_id``."""

    task = "vqa"

    def example_id(self, index: int):
        return self.record(index)["question_id"]

    def _targets(self, record: dict) -> dict:
        if "answers" not in record:      # test splits: questions only
            return {"answer_targets": (np.zeros(0, np.int64), np.zeros(0, np.float32))}
        return {"answer_targets": self.vocab.targets(record["answers"])}


class GqaDataset(AnswerDataset):
    """GQA balanced questions (``--from gqa``); answers compared as exact strings, as its evaluator does."""

    task = "gqa"

    def _targets(self, record: dict) -> dict:
        cls = self.vocab.index.get(record.get("answer"), IGNORE_INDEX)
        if cls == IGNORE_INDEX:
            return {"answer_label": IGNORE_INDEX, "answer_targets": (np.zeros(0, np.int64), np.zeros(0, np.float32))}
        return {"answer_label": cls, "answer_targets": (np.array([cls], np.int64), np.ones(1, np.float32))}
