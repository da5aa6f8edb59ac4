"""Question-image pairs for image-QA pretraining (SemVLP, after LXMERT): one item per question.

The questions come from a VQA or GQA annotation set (``vlengine data convert
--from vqa|gqa``) whose images are records of the pretraining store. An item is
laid out like a caption item (``collate_items`` pads both into one batch), with
the question as the text and ``qa_label``, its answer's class. A question row is
not an ITM example (``itm_label`` = IGNORE_INDEX: it is neither a matched
caption nor a random one), so ITM and the losses restricted to matched pairs
leave it out, while MLM and masked object prediction see it like any other row.

The answer classes are given per record by the caller (``labels``): the answer
vocabulary is the training layer's business (vlengine.metrics.vqa.AnswerVocab,
the same one fine-tuning uses), not the loader's.
"""

from __future__ import annotations

import os

import numpy as np

from vlengine.batch import IGNORE_INDEX

from ..annotations import AnnotationSet, open_annotations
from ..store import Store, open_store
from ..text import TextEncoder
from .datasets import store_region_item

QA_TASKS = ("vqa", "gqa")


class QuestionImageDataset:
    """Questions of an annotation set over a store's region features; items keyed ``(epoch, index)``.

    Args:
        annotations: a ``vqa`` or ``gqa`` annotation set (or its path).
        store: the store holding every image the questions name (or its path).
        tokenizer: the encoder of the store's vocabulary.
        labels: int64 [n], the answer class of each record (IGNORE_INDEX: no class; such a row still
            trains MLM and masked object prediction).
        max_text_len / max_regions: as :class:`~vlengine.data.loading.datasets.CaptionImageDataset`.
    """

    keyed_by_epoch = True  # nothing about an item is random: the epoch is accepted and ignored

    def __init__(self, annotations: AnnotationSet | str, store: Store | str, tokenizer: TextEncoder,
                 labels: np.ndarray, max_text_len: int | None = 64, max_regions: int | None = None):
        self.annotations = open_annotations(annotations) if isinstance(annotations, (str, os.PathLike)) else annotations
        if self.annotations.task not in QA_TASKS:
            raise ValueError(f"annotation set {self.annotations.path} holds task {self.annotations.task!r}: "
                             f"image-QA pretraining reads {' or '.join(QA_TASKS)} questions")
        self.store = open_store(store) if isinstance(store, (str, os.PathLike)) else store
        if not self.store.has_features:
            raise ValueError(f"store {self.store.path} has no region features: image-QA pretraining reads "
                             "precomputed features")
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(self.annotations),):
            raise ValueError(f"labels: expected one answer class per question ({len(self.annotations)}), "
                             f"got shape {list(labels.shape)}")
        if len(self.annotations) == 0:
            raise ValueError(f"annotation set {self.annotations.path} has no questions")
        self.labels = labels
        self.tokenizer = tokenizer
        self.max_text_len = max_text_len
        self.max_regions = max_regions
        self.image_index = self.annotations.image_indices(self.store)[:, 0]

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, key) -> dict:
        _epoch, index = key if isinstance(key, tuple) else (0, key)
        if not 0 <= index < len(self):
            raise IndexError(f"question index {index} out of range [0, {len(self)})")
        encoded = self.tokenizer.encode(self.annotations[index]["text"], self.max_text_len)
        item = store_region_item(self.store, int(self.image_index[index]), self.max_regions)
        item.update(input_ids=np.asarray(encoded.ids, dtype=np.int64),
                    word_ids=np.asarray(encoded.word_ids, dtype=np.int64),
                    itm_label=IGNORE_INDEX, qa_label=int(self.labels[index]), question_index=int(index))
        return item
