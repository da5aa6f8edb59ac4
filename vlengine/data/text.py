"""WordPiece text encoding through Hugging Face ``tokenizers``.

Two ways to get a vocabulary, both in bert-base-uncased layout ([PAD]=0,
[unused0..98], [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103, then word pieces),
so ids of the special tokens match BERT's and a BERT checkpoint's embedding
rows line up for the specials:

* a local ``vocab.txt`` (e.g. bert-base-uncased's own), or
* :func:`train_vocab` on a corpus, or :func:`write_vocab` from a fixed word list
  (the embedded corpus ships one generated from its grammar).

Every encoding also returns word ids (index of the whole word each token came
from, -1 on [CLS]/[SEP]/padding) so masking can mask whole words. Text pairs
(question + answer slot, sentence A + B) use BERT's pair template
``[CLS] A [SEP] B [SEP]`` with segment ids 0 then 1 (:meth:`TextEncoder.encode_pair`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from ..atomic import write_text

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
NUM_UNUSED_BEFORE_UNK = 99  # bert-base-uncased: [unused0]..[unused98] sit at ids 1..99
PUNCTUATION = ".,;:!?'\"-()"  # the pre-tokenizer splits these off as words of their own


def special_tokens_layout() -> list[str]:
    """The first 104 entries of a bert-base-uncased vocab (specials at BERT's ids)."""
    return [PAD] + [f"[unused{i}]" for i in range(NUM_UNUSED_BEFORE_UNK)] + [UNK, CLS, SEP, MASK]


@dataclass
class Encoded:
    """One encoded text: ``ids`` and ``word_ids`` are int64 arrays of equal length;
    ``segment_ids`` (0 for segment A, 1 for B) only for text pairs."""
    ids: np.ndarray
    word_ids: np.ndarray
    segment_ids: np.ndarray | None = None


class TextEncoder:
    """BERT-style WordPiece encoder: ``[CLS] tokens [SEP]``, lower-cased, accents stripped.

    Build with :func:`load_tokenizer`. Picklable (DataLoader workers get a copy
    built from the vocab file, not a pickled Rust object).
    """

    def __init__(self, vocab_file: str, lowercase: bool = True):
        if not os.path.isfile(vocab_file):
            raise FileNotFoundError(f"vocab_file: no such file {vocab_file!r}")
        self.vocab_file = os.path.abspath(vocab_file)
        self.lowercase = lowercase
        self._build()

    def _build(self) -> None:
        with open(self.vocab_file, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
        vocab = {}
        for i, tok in enumerate(tokens):
            if tok == "":
                raise ValueError(f"vocab_file {self.vocab_file!r}: empty token at line {i + 1}")
            if tok in vocab:
                raise ValueError(f"vocab_file {self.vocab_file!r}: duplicate token {tok!r} at line {i + 1}")
            vocab[tok] = i
        for tok in (PAD, UNK, CLS, SEP, MASK):
            if tok not in vocab:
                raise ValueError(f"vocab_file {self.vocab_file!r}: missing special token {tok}")
        self.vocab = vocab
        tok = Tokenizer(models.WordPiece(vocab, unk_token=UNK, max_input_chars_per_word=100))
        tok.normalizer = normalizers.BertNormalizer(lowercase=self.lowercase, strip_accents=self.lowercase,
                                                    clean_text=True, handle_chinese_chars=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A {SEP}", pair=f"{CLS}:0 $A:0 {SEP}:0 $B:1 {SEP}:1",
            special_tokens=[(CLS, vocab[CLS]), (SEP, vocab[SEP])])
        tok.decoder = decoders.WordPiece(prefix="##")
        # mark the specials (already in the vocab, so no new ids) so decode can skip them
        # and the normaliser never splits "[MASK]" written in a text
        tok.add_special_tokens([PAD, UNK, CLS, SEP, MASK])
        self._tok = tok
        self.pad_id, self.unk_id = vocab[PAD], vocab[UNK]
        self.cls_id, self.sep_id, self.mask_id = vocab[CLS], vocab[SEP], vocab[MASK]

    def __getstate__(self):
        return {"vocab_file": self.vocab_file, "lowercase": self.lowercase}

    def __setstate__(self, state):
        self.vocab_file, self.lowercase = state["vocab_file"], state["lowercase"]
        self._build()

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def special_ids(self) -> dict[str, int]:
        return {"pad": self.pad_id, "unk": self.unk_id, "cls": self.cls_id, "sep": self.sep_id, "mask": self.mask_id}

    def encode(self, text: str, max_length: int | None = None) -> Encoded:
        """``[CLS] text [SEP]``, cut to ``max_length`` tokens (keeping [SEP] last)."""
        return self.encode_batch([text], max_length)[0]

    def encode_batch(self, texts: Sequence[str], max_length: int | None = None) -> list[Encoded]:
        """Encodes many texts at once (the Rust side runs them in parallel)."""
        if max_length is not None and max_length < 2:
            raise ValueError(f"max_length must be >= 2 (room for [CLS] and [SEP]), got {max_length}")
        out = []
        for enc in self._tok.encode_batch(list(texts)):
            ids = np.asarray(enc.ids, dtype=np.int64)
            words = np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
            if max_length is not None and len(ids) > max_length:
                ids = np.concatenate([ids[:max_length - 1], ids[-1:]])
                words = np.concatenate([words[:max_length - 1], words[-1:]])
            out.append(Encoded(ids, words))
        return out

    def encode_pair(self, text_a: str, text_b: str, max_length: int | None = None) -> Encoded:
        """``[CLS] A [SEP] B [SEP]`` with ``segment_ids`` 0 (through the first [SEP]) and 1.

        VL-BERT's VQA input is ``encode_pair(question, "[MASK]")``: the answer slot
        in segment B. Over ``max_length``, tokens are cut from the end of the longer
        segment, one at a time (B on a tie: BERT's "longest first"). Word ids of B
        continue after A's, so no word of B shares an id with a word of A.
        """
        return self.encode_pair_batch([(text_a, text_b)], max_length)[0]

    def encode_pair_batch(self, pairs: Sequence[tuple[str, str]], max_length: int | None = None) -> list[Encoded]:
        if max_length is not None and max_length < 3:
            raise ValueError(f"max_length must be >= 3 for a pair (room for [CLS] and two [SEP]), got {max_length}")
        out = []
        for enc in self._tok.encode_batch([(a, b) for a, b in pairs]):
            # the template's [CLS]/[SEP] have no sequence id; text tokens (a "[MASK]" written in B
            # included) have 0 or 1, and A's sit at 1..len(A), its [SEP] right after them
            seq = enc.sequence_ids
            a_pos = [i for i, s in enumerate(seq) if s == 0]
            b_pos = [i for i, s in enumerate(seq) if s == 1]
            first_sep = len(a_pos) + 1
            while max_length is not None and len(a_pos) + len(b_pos) + 3 > max_length:
                (a_pos if len(a_pos) > len(b_pos) else b_pos).pop()
            keep = [0] + a_pos + [first_sep] + b_pos + [len(enc.ids) - 1]
            ids = np.asarray(enc.ids, dtype=np.int64)[keep]
            segments = np.asarray(enc.type_ids, dtype=np.int64)[keep]
            words = np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
            a_words = words[a_pos]
            shift = int(a_words.max()) + 1 if a_words.size else 0
            words[b_pos] += shift
            out.append(Encoded(ids, words[keep], segments))
        return out

    def encode_plain(self, text: str) -> Encoded:
        """Word pieces of ``text`` without [CLS]/[SEP] (for cutting long text into chunks)."""
        enc = self._tok.encode(text, add_special_tokens=False)
        return Encoded(np.asarray(enc.ids, dtype=np.int64),
                       np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64))

    def encode_words(self, words: Sequence[str]) -> Encoded:
        """Word pieces of already-split ``words`` without [CLS]/[SEP]; ``word_ids`` index ``words``
        (punctuation inside a word does not shift them, as it would through ``encode_plain``)."""
        enc = self._tok.encode(list(words), is_pretokenized=True, add_special_tokens=False)
        return Encoded(np.asarray(enc.ids, dtype=np.int64), np.asarray(enc.word_ids, dtype=np.int64))

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def tokens(self, ids: Iterable[int]) -> list[str]:
        return [self._tok.id_to_token(int(i)) for i in ids]


def load_tokenizer(vocab_file: str, lowercase: bool = True) -> TextEncoder:
    """A :class:`TextEncoder` for a bert-base-uncased-format ``vocab.txt`` (one token per line)."""
    return TextEncoder(vocab_file, lowercase=lowercase)


def write_vocab(words: Iterable[str], path: str) -> str:
    """Writes a vocab in bert-base-uncased layout: specials first, then ``words``
    (deduplicated, order kept) and the single characters they use (with ``##``
    continuations), so any text made of those characters encodes without [UNK]."""
    tokens = special_tokens_layout()
    seen = set(tokens)
    chars: list[str] = []
    for w in words:
        w = w.strip().lower()
        if not w:
            continue
        if w not in seen:
            seen.add(w)
            tokens.append(w)
        chars.extend(w)
    chars.extend(PUNCTUATION)
    for c in sorted(set(chars)):
        for t in (c, "##" + c):
            if t not in seen:
                seen.add(t)
                tokens.append(t)
    _atomic_write_lines(path, tokens)
    return path


def train_vocab(texts: Iterable[str], path: str, vocab_size: int = 30522, min_frequency: int = 2) -> str:
    """Trains a WordPiece vocabulary on ``texts`` with ``tokenizers`` and writes it
    to ``path`` in bert-base-uncased layout (BERT's special ids kept)."""
    tok = Tokenizer(models.WordPiece(unk_token=UNK))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = special_tokens_layout()
    if vocab_size <= len(specials):
        raise ValueError(f"vocab_size must exceed the {len(specials)} special/unused entries, got {vocab_size}")
    # vocab_size counts every entry (bert-base-uncased: 30522); the trainer puts the
    # specials first, then the alphabet, then merges, so the result is already in BERT order
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=specials, continuing_subword_prefix="##", show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    learned = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    tokens = specials + [t for t, _ in learned if t not in set(specials)]
    _atomic_write_lines(path, tokens)
    return path


def _atomic_write_lines(path: str, lines: list[str]) -> None:
    write_text(path, "\n".join(lines) + "\n")
