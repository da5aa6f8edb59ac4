"""WordPiece text encoding: BERT layout, word ids for whole-word masking, vocab training, bad vocab files."""

import pickle

import numpy as np
import pytest

from vlengine.data.text import load_tokenizer, special_tokens_layout, train_vocab, write_vocab


def test_bert_layout_and_word_ids(tmp_path):
    path = write_vocab(["a", "red", "circle", "left", "of", "square", "play"], str(tmp_path / "vocab.txt"))
    lines = open(path).read().splitlines()
    assert lines[:104] == special_tokens_layout()
    tok = load_tokenizer(path)
    assert tok.special_ids == {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
    enc = tok.encode("A Red circle, player!")
    toks = tok.tokens(enc.ids)
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]"
    assert toks[1:4] == ["a", "red", "circle"] and "play" in toks and "##e" in toks
    # word ids: -1 on specials; all pieces of "player" share one id
    words = enc.word_ids.tolist()
    assert words[0] == -1 and words[-1] == -1
    play = toks.index("play")
    assert words[play] == words[play + 1] == words[play + 2] != words[play - 1]
    assert tok.unk_id not in enc.ids  # characters are in the vocab: nothing is unknown
    assert tok.decode(enc.ids) == "a red circle, player!"
    assert tok.encode("a [MASK] circle").ids.tolist() == [101, tok.vocab["a"], 103, tok.vocab["circle"], 102]


def test_truncation_and_pickle(tmp_path):
    tok = load_tokenizer(write_vocab(["a", "b"], str(tmp_path / "v.txt")))
    enc = tok.encode("a b a b a b a b", max_length=5)
    assert enc.ids.tolist() == [101, tok.vocab["a"], tok.vocab["b"], tok.vocab["a"], 102]
    assert enc.word_ids.tolist() == [-1, 0, 1, 2, -1]
    with pytest.raises(ValueError, match="max_length"):
        tok.encode("a", max_length=1)
    clone = pickle.loads(pickle.dumps(tok))  # workers rebuild from the vocab file
    assert np.array_equal(clone.encode("a b").ids, tok.encode("a b").ids)


def test_train_vocab_from_a_corpus(tmp_path):
    texts = ["the quick brown fox jumps over the lazy dog", "a quick red fox", "lazy dogs sleep"] * 20
    path = train_vocab(texts, str(tmp_path / "trained.txt"), vocab_size=200, min_frequency=1)
    lines = open(path).read().splitlines()
    assert lines[:104] == special_tokens_layout() and len(lines) <= 200 and len(set(lines)) == len(lines)
    tok = load_tokenizer(path)
    enc = tok.encode("the quick fox sleeps")
    assert tok.unk_id not in enc.ids and tok.decode(enc.ids) == "the quick fox sleeps"


def test_bad_vocab_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab_file"):
        load_tokenizer(str(tmp_path / "missing.txt"))
    bad = tmp_path / "nomask.txt"
    bad.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"]) + "\n")
    with pytest.raises(ValueError, match=r"nomask.txt.*\[MASK\]"):
        load_tokenizer(str(bad))
    dup = tmp_path / "dup.txt"
    dup.write_text("\n".join(special_tokens_layout() + ["a", "a"]) + "\n")
    with pytest.raises(ValueError, match="dup.txt.*duplicate token 'a' at line 106"):
        load_tokenizer(str(dup))
