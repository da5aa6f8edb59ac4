"""VCR's four grounded sequences per question: every WordPiece of a mention carries its store region
(detection + 1), and the sequences are the same whatever the DataLoader's worker count."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from vlengine.data.convert.vcr import NAMES, render
from vlengine.data.text import load_tokenizer, write_vocab
from vlengine.tasks.downstream.vcr_text import encode_grounded_pair, vcr_sequences

OBJECTS = ["person", "person", "dining table", "dog"]


def record(k=0):
    return {"id": f"val-{k}", "question": render(["Why", "is", [0, 1], "by", "the", [2], "?"], OBJECTS, "q"),
            "answer_choices": [render(t, OBJECTS, "a") for t in ([[3], "barks"], ["no"], [[0], "eats"], ["yes", "."])],
            "rationale_choices": [render(t, OBJECTS, "r") for t in (["food"], [[1], "waits"], ["no"], ["yes"])],
            "answer_label": 2, "rationale_label": 1}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    words = [n.lower() for n in NAMES] + ["why", "is", "and", "by", "the", "dining", "table", "?", ".", "dog", "bark",
                                          "##s", "no", "eat", "yes", "food", "wait"]
    return load_tokenizer(write_vocab(words, str(tmp_path_factory.mktemp("v") / "vocab.txt")))


def test_mention_pieces_carry_their_region(encoder):
    q_a = vcr_sequences(encoder, record(), "q_a", 64)
    assert len(q_a) == 4
    first = q_a[0]
    tokens = encoder.tokens(first.ids)
    assert tokens == ["[CLS]", "why", "is", "casey", "and", "riley", "by", "the", "dining", "table", "?", "[SEP]",
                      "dog", "bark", "##s", "[SEP]"]
    # detection d -> store region d + 1 on every piece of its mention ("bark ##s" mentions nothing)
    assert first.regions.tolist() == [-1, -1, -1, 1, -1, 2, -1, -1, 3, 3, -1, -1, 4, -1, -1, -1]
    assert first.segment_ids.tolist() == [0] * 12 + [1] * 4


def test_qa_r_puts_the_gold_answer_in_segment_a(encoder):
    seqs = vcr_sequences(encoder, record(), "qa_r", 64)
    tokens = encoder.tokens(seqs[1].ids)
    sep = tokens.index("[SEP]")
    assert tokens[sep - 3:sep] == ["casey", "eat", "##s"] and tokens[sep + 1:] == ["riley", "wait", "##s", "[SEP]"]
    with pytest.raises(ValueError, match="gold answer"):
        vcr_sequences(encoder, {**record(), "answer_label": None}, "qa_r", 64)


def test_longest_first_truncation(encoder):
    pair = encode_grounded_pair(encoder, [record()["question"]], record()["answer_choices"][0], 8)
    assert len(pair.ids) == 8 and encoder.tokens(pair.ids)[-1] == "[SEP]"
    assert len(pair.ids) == len(pair.regions) == len(pair.segment_ids)


class Sequences(Dataset):
    def __init__(self, encoder):
        self.encoder = encoder

    def __len__(self):
        return 6

    def __getitem__(self, k):
        seqs = vcr_sequences(self.encoder, record(k), "q_a", 32) + vcr_sequences(self.encoder, record(k), "qa_r", 32)
        return [torch.from_numpy(np.concatenate([s.ids, s.regions])) for s in seqs]


def test_same_sequences_for_any_worker_count(encoder):
    def run(workers):
        loader = DataLoader(Sequences(encoder), batch_size=None, num_workers=workers, shuffle=False)
        return [[t.tolist() for t in item] for item in loader]
    assert run(0) == run(2)
