"""The tokenizer's pair template: [CLS] A [SEP] B [SEP], segment ids 0/1, longest-first truncation."""

import pytest

from vlengine.data.text import load_tokenizer, write_vocab


@pytest.fixture
def tok(tmp_path):
    return load_tokenizer(write_vocab(["what", "color", "is", "the", "dog", "a", "red"], str(tmp_path / "vocab.txt")))


def test_pair_template_and_segments(tok):
    e = tok.encode_pair("what color is the dog?", "a red dog")
    assert tok.tokens(e.ids) == ["[CLS]", "what", "color", "is", "the", "dog", "?", "[SEP]", "a", "red", "dog", "[SEP]"]
    assert e.segment_ids.tolist() == [0] * 8 + [1] * 4
    # B's words continue after A's (whole-word masking never joins words of A and B)
    assert e.word_ids.tolist() == [-1, 0, 1, 2, 3, 4, 5, -1, 6, 7, 8, -1]
    assert len(e.ids) == len(e.word_ids) == len(e.segment_ids)
    assert tok.encode("a red dog").segment_ids is None  # single texts are unchanged


def test_vlbert_answer_slot(tok):
    e = tok.encode_pair("what color is the dog?", "[MASK]")
    assert tok.tokens(e.ids)[-3:] == ["[SEP]", "[MASK]", "[SEP]"]
    assert e.ids[-2] == tok.mask_id and e.segment_ids[-2] == 1


def test_longest_first_truncation(tok):
    e = tok.encode_pair("what color is the dog?", "a red dog", max_length=8)  # 6 + 3 tokens -> 3 + 2
    assert tok.tokens(e.ids) == ["[CLS]", "what", "color", "is", "[SEP]", "a", "red", "[SEP]"]
    assert e.segment_ids.tolist() == [0, 0, 0, 0, 0, 1, 1, 1] and e.word_ids.tolist() == [-1, 0, 1, 2, -1, 3, 4, -1]
    e = tok.encode_pair("what color", "a red", max_length=5)  # tie: B loses first
    assert tok.tokens(e.ids) == ["[CLS]", "what", "[SEP]", "a", "[SEP]"]
    assert tok.tokens(tok.encode_pair("what", "red", max_length=3).ids) == ["[CLS]", "[SEP]", "[SEP]"]
    with pytest.raises(ValueError, match="max_length must be >= 3"):
        tok.encode_pair("a", "b", max_length=2)


def test_empty_segments_and_batch(tok):
    assert tok.tokens(tok.encode_pair("", "red").ids) == ["[CLS]", "[SEP]", "red", "[SEP]"]
    assert tok.encode_pair("red", "").segment_ids.tolist() == [0, 0, 0, 1]
    batch = tok.encode_pair_batch([("what", "red"), ("the dog", "a")])
    assert [tok.tokens(e.ids) for e in batch] == [["[CLS]", "what", "[SEP]", "red", "[SEP]"],
                                                  ["[CLS]", "the", "dog", "[SEP]", "a", "[SEP]"]]
