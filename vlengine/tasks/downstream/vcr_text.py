"""VCR's sequences: ``[CLS] A [SEP] B [SEP]`` from converted texts (``{"words", "regions"}``, see
``vlengine.data.convert.vcr``), with per WordPiece the store region its word mentions.

Q->A: A = the question, B = one answer. QA->R: A = the question followed by the gold answer, B = one
rationale (VL-BERT's layout). Every piece of a mention carries its region (detection d is store
region d + 1: region 0 is the whole image), so the model adds that region's visual feature to the
piece (grounded text embedding); pieces that mention nothing, and [CLS]/[SEP], carry -1.
Over ``max_length`` pieces are cut from the end of the longer segment (BERT's longest first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data.text import TextEncoder

NUM_CHOICES = 4


@dataclass
class GroundedPair:
    ids: np.ndarray          # [L] int64
    segment_ids: np.ndarray  # [L] 0 through the first [SEP], then 1
    regions: np.ndarray      # [L] store region of the piece's mention, -1 for none


def _pieces(encoder: TextEncoder, texts: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    words = [w for t in texts for w in t["words"]]
    regions = np.asarray([r for t in texts for r in t["regions"]], dtype=np.int64)
    enc = encoder.encode_words(words)
    piece_regions = regions[enc.word_ids]
    return enc.ids, np.where(piece_regions >= 0, piece_regions + 1, -1)


def encode_grounded_pair(encoder: TextEncoder, first: list[dict], second: dict, max_length: int) -> GroundedPair:
    """``first``: the texts of segment A in order (question; question and gold answer for QA->R)."""
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3 for a pair (room for [CLS] and two [SEP]), got {max_length}")
    a_ids, a_reg = _pieces(encoder, first)
    b_ids, b_reg = _pieces(encoder, [second])
    na, nb = len(a_ids), len(b_ids)
    while na + nb + 3 > max_length:
        if na > nb:
            na -= 1
        else:
            nb -= 1
    cls, sep, none = [encoder.cls_id], [encoder.sep_id], [-1]
    ids = np.concatenate([cls, a_ids[:na], sep, b_ids[:nb], sep]).astype(np.int64)
    regions = np.concatenate([none, a_reg[:na], none, b_reg[:nb], none]).astype(np.int64)
    segments = np.concatenate([np.zeros(na + 2, np.int64), np.ones(nb + 1, np.int64)])
    return GroundedPair(ids, segments, regions)


def vcr_sequences(encoder: TextEncoder, record: dict, mode: str, max_length: int) -> list[GroundedPair]:
    """The four sequences of one question: ``mode`` "q_a" (question, answer i) or "qa_r" (question +
    answer ``gold``, rationale i; the gold answer is the record's label, or ``record["given_answer"]``
    when set: the test split's submission scores rationales under each of the four answers)."""
    if mode == "q_a":
        return [encode_grounded_pair(encoder, [record["question"]], a, max_length) for a in record["answer_choices"]]
    if mode != "qa_r":
        raise ValueError(f"VCR mode must be 'q_a' or 'qa_r', got {mode!r}")
    given = record.get("given_answer", record.get("answer_label"))
    if given is None:
        raise ValueError(f"VCR {record.get('id')}: QA->R needs the gold answer (test records: set given_answer)")
    first = [record["question"], record["answer_choices"][given]]
    return [encode_grounded_pair(encoder, first, r, max_length) for r in record["rationale_choices"]]
