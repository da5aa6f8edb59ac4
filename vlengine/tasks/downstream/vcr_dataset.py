"""VCR (``--from vcr``): a question about one image, four answers, then four rationales.

An item is one question in one sub-task: ``"q_a"`` (the question with each answer) or ``"qa_r"`` (the
question and an answer given, with each rationale; the gold answer, or ``given_answer`` for the test
split's submission, which scores the rationales under each of the four answers). Its four sequences
(``vcr_text.vcr_sequences``) carry per WordPiece the store region their word mentions (grounding), and
the image's region fields appear once per item (the model shares them between the four rows).

A dataset of several sub-tasks (``subtasks=("q_a", "qa_r")``: one model for both, see
``FinetuneTask.vcr_subtasks``) holds the questions once per sub-task: items 0..N-1 are Q->A, N..2N-1
QA->R. Region inputs: the store's precomputed features, or with ``image_transform`` the store's images
(raw-image store, ``--from vcr-images``) for the visual front-end. ``with_image=False`` drops the image
and the grounding: the text-only baseline.
"""

from __future__ import annotations

import numpy as np
import torch

from vlengine.batch import IGNORE_INDEX, VLBatch
from vlengine.data.loading import collate_items
from vlengine.data.loading.collate import collate_regions

from .collate import pad_rows
from .dataset_base import AnnotatedImageDataset
from .vcr_text import NUM_CHOICES, vcr_sequences

SUBTASKS = ("q_a", "qa_r")
LABEL_OF = {"q_a": "answer_label", "qa_r": "rationale_label"}


class VcrDataset(AnnotatedImageDataset):
    """``len`` = questions x sub-tasks; ``[key]`` -> an item (see the module doc); ``example_id(i)`` is the
    question's ``annot_id`` (with several sub-tasks: ``"<subtask>:<annot_id>"``)."""

    task = "vcr"

    def __init__(self, annotations, store, tokenizer, subtasks=SUBTASKS, given_answer: int | None = None,
                 max_text_len: int | None = 64, max_regions: int | None = None, with_image: bool = True,
                 image_transform=None):
        self.subtasks = tuple(subtasks)
        if not self.subtasks or any(s not in SUBTASKS for s in self.subtasks) or len(set(self.subtasks)) != len(self.subtasks):
            raise ValueError(f"VCR sub-tasks must be distinct values of {SUBTASKS}, got {subtasks!r}")
        if given_answer is not None and not 0 <= given_answer < NUM_CHOICES:
            raise ValueError(f"given_answer must be 0..{NUM_CHOICES - 1}, got {given_answer}")
        super().__init__(annotations, store, tokenizer, max_text_len, max_regions, with_image, image_transform)
        self.given_answer = given_answer
        self.questions = len(self.annotations)

    def variant(self, subtasks=None, given_answer: int | None = None) -> "VcrDataset":
        """The same questions, images and settings in other sub-tasks (evaluation scores each alone)."""
        return VcrDataset(self.annotations, self.store, self.tokenizer, subtasks or self.subtasks, given_answer,
                          self.max_text_len, self.max_regions, self.with_image, self.image_transform)

    def __len__(self) -> int:
        return self.questions * len(self.subtasks)

    def _split(self, index: int) -> tuple[str, int]:
        return self.subtasks[index // self.questions], index % self.questions

    def record(self, index: int) -> dict:
        return self.annotations[self._split(index)[1]]

    def example_id(self, index: int):
        subtask, question = self._split(index)
        annot_id = self.annotations[question]["id"]
        return annot_id if len(self.subtasks) == 1 else f"{subtask}:{annot_id}"

    def label(self, index: int) -> int:
        subtask, question = self._split(index)
        return int(self.annotations[question].get(LABEL_OF[subtask], IGNORE_INDEX))

    def __getitem__(self, key) -> dict:
        index = self._index(key)
        subtask, question = self._split(index)
        record = self.annotations[question]
        if self.given_answer is not None:
            record = {**record, "given_answer": self.given_answer}
        max_length = 512 if self.max_text_len is None else self.max_text_len
        choices = []
        for pair in vcr_sequences(self.tokenizer, record, subtask, max_length):
            row = {"input_ids": pair.ids, "word_ids": np.full(len(pair.ids), -1, np.int64),
                   "token_type_ids": pair.segment_ids,
                   "text_regions": pair.regions if self.with_image else np.full(len(pair.ids), -1, np.int64)}
            if not self.with_image:
                row["text_only"] = True
            choices.append(row)
        item = {"choices": choices, "label": int(record.get(LABEL_OF[subtask], IGNORE_INDEX)), "example_index": index}
        if self.with_image:
            item["image"] = self._regions(self.image_index[question, 0])
        return item


def collate_vcr(items: list[dict], pad_id: int = 0) -> VLBatch:
    """B items -> one VLBatch: text fields with 4B rows (question-major, choice-minor), region fields
    with B rows (the VCR model shares them between a question's four rows); extras ``example_index``
    [B], ``label`` [B] (IGNORE_INDEX without labels) and ``text_regions`` [4B, T] (-1: no mention)."""
    if not items:
        raise ValueError("collate_vcr: empty list of items")
    rows = [row for it in items for row in it["choices"]]
    batch = collate_items(rows, pad_id=pad_id)
    images = [it["image"] for it in items if "image" in it]
    if images and len(images) != len(items):
        raise ValueError("collate_vcr: some items have an image and some do not")
    extras = {"example_index": torch.tensor([it["example_index"] for it in items], dtype=torch.int64),
              "label": torch.tensor([it["label"] for it in items], dtype=torch.int64),
              "text_regions": pad_rows([r["text_regions"] for r in rows], -1)}
    return batch.replace(token_type_ids=pad_rows([r["token_type_ids"] for r in rows], 0), itm_label=None,
                         extras=extras, **collate_regions(images))
