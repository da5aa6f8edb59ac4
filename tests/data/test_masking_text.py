"""Text masking policies: MLM (token and whole word) and InterBERT MSM spans."""

import pytest
import torch
from masking_batches import CLS, MASK, PAD, SEP, VOCAB, text_batch, within_three_sigma

from vlengine.batch import IGNORE_INDEX
from vlengine.data.masking import MLMMasking, SpanMasking

SPECIALS = torch.tensor([PAD, CLS, SEP, MASK])


def _draws(policy, batch, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [policy(batch, gen) for _ in range(n)]


def _maskable(batch):
    return batch.text_mask & ~torch.isin(batch.input_ids, SPECIALS) & (batch.word_ids >= 0)


@pytest.mark.parametrize("policy", [MLMMasking(VOCAB), MLMMasking(VOCAB, whole_word=True), SpanMasking(VOCAB),
                                    SpanMasking(VOCAB, whole_word=False)], ids=["mlm", "mlm-wwm", "msm", "msm-tok"])
def test_specials_and_padding_never_masked_and_labels_hold_originals(policy, rng):
    batch = text_batch(32, 40, rng)
    maskable = _maskable(batch)
    for out in _draws(policy, batch, 10):
        selected = out.mlm_labels != IGNORE_INDEX
        assert not (selected & ~maskable).any()
        assert torch.equal(out.input_ids[~maskable], batch.input_ids[~maskable])
        assert torch.equal(out.mlm_labels[selected], batch.input_ids[selected])
        assert torch.equal(out.input_ids[~selected], batch.input_ids[~selected])
        changed = out.input_ids[selected]
        random = changed[(changed != MASK) & (changed != batch.input_ids[selected])]
        assert ((random >= 104) & (random < VOCAB)).all()
    assert batch.mlm_labels is None  # the input batch is not modified


def _first_pieces(batch):
    """[B, T] bool: the first token of each word (one per whole-word decision)."""
    w = batch.word_ids
    return (w >= 0) & torch.cat([torch.ones_like(w[:, :1], dtype=torch.bool), w[:, 1:] != w[:, :-1]], dim=1)


@pytest.mark.parametrize("policy", [MLMMasking(VOCAB), MLMMasking(VOCAB, whole_word=True), SpanMasking(VOCAB)],
                         ids=["mlm", "mlm-wwm", "msm"])
def test_80_10_10_split(policy, rng):
    # One decision per unit: count tokens for token units, first pieces for whole words.
    batch = text_batch(64, 48, rng)
    units = _first_pieces(batch) if policy.whole_word else torch.ones_like(batch.text_mask)
    n_sel = n_mask = n_random = 0
    for out in _draws(policy, batch, 20):
        selected = (out.mlm_labels != IGNORE_INDEX) & units
        new, old = out.input_ids[selected], batch.input_ids[selected]
        n_sel += int(selected.sum())
        n_mask += int((new == MASK).sum())
        n_random += int(((new != MASK) & (new != old)).sum())
    assert within_three_sigma(n_mask, n_sel, 0.8)
    assert within_three_sigma(n_random, n_sel, 0.1)


def test_mlm_token_rate_within_three_sigma(rng):
    batch = text_batch(64, 64, rng)
    total = int(_maskable(batch).sum()) * 20
    count = sum(int((out.mlm_labels != IGNORE_INDEX).sum()) for out in _draws(MLMMasking(VOCAB), batch, 20))
    assert within_three_sigma(count, total, 0.15)


def test_whole_word_masks_words_together_at_the_word_rate(rng):
    batch = text_batch(64, 64, rng)
    words = batch.word_ids
    same_word_as_next = (words[:, 1:] == words[:, :-1]) & (words[:, 1:] >= 0)
    n_words = int((words.max(dim=1).values + 1).sum())
    count = 0
    for out in _draws(MLMMasking(VOCAB, whole_word=True), batch, 20):
        selected = out.mlm_labels != IGNORE_INDEX
        assert torch.equal(selected[:, 1:][same_word_as_next], selected[:, :-1][same_word_as_next])
        is_mask = out.input_ids == MASK
        assert torch.equal(is_mask[:, 1:][same_word_as_next], is_mask[:, :-1][same_word_as_next])
        count += int((selected & _first_pieces(batch)).sum())
    assert within_three_sigma(count, n_words * 20, 0.15)


def _span_reference(batch, policy, seed):
    """SpanMasking written as a loop over words, consuming the generator in the same order."""
    gen = torch.Generator().manual_seed(seed)
    b, t = batch.input_ids.shape
    anchor_draw = torch.rand(b, t, generator=gen)
    extra = torch.randint(0, policy.max_extra + 1, (b, t), generator=gen)
    covered = torch.zeros(b, t, dtype=torch.bool)
    for row in range(b):
        n_words = int(batch.word_ids[row].max()) + 1
        for w in range(n_words):
            if anchor_draw[row, w] < policy.anchor_prob:
                for k in range(int(extra[row, w]) + 1):
                    if w + k < n_words:
                        covered[row, w + k] = True
    return covered.gather(1, batch.word_ids.clamp(min=0)) & _maskable(batch)


def test_span_masking_matches_a_word_loop(rng):
    batch = text_batch(16, 40, rng)
    policy = SpanMasking(VOCAB, anchor_prob=0.2)
    out = policy(batch, torch.Generator().manual_seed(5))
    assert torch.equal(out.mlm_labels != IGNORE_INDEX, _span_reference(batch, policy, 5))


def test_span_rate_and_length_distribution(rng):
    # Token units on long rows: word u is masked iff an anchor at u, u-1 (with >= 1 extra) or u-2
    # (with 2 extra) exists: P = 1 - (1-p)(1-2p/3)(1-p/3), for words with two predecessors.
    batch = text_batch(256, 96, rng)
    batch = batch.replace(text_mask=torch.ones_like(batch.text_mask), word_ids=None,  # every row full length
                          input_ids=torch.where(batch.input_ids == PAD, 5000, batch.input_ids))
    batch.input_ids[:, -1] = SEP
    p = 0.1
    expected = 1 - (1 - p) * (1 - 2 * p / 3) * (1 - p / 3)
    rates = []
    for out in _draws(SpanMasking(VOCAB, anchor_prob=p, whole_word=False), batch, 8):
        sel = (out.mlm_labels != IGNORE_INDEX)[:, 3:-1].float()
        rates.append(sel.mean(dim=1))
    rates = torch.cat(rates)  # rows are independent: the spread of per-row rates gives the error bar
    assert abs(rates.mean().item() - expected) <= 3 * rates.std().item() / len(rates) ** 0.5

    # Sparse anchors: runs of masked tokens are mostly single spans, lengths 1, 2, 3 equally likely.
    lengths = []
    for out in _draws(SpanMasking(VOCAB, anchor_prob=0.01, whole_word=False), batch, 12, seed=1):
        sel = (out.mlm_labels != IGNORE_INDEX).int()
        edges = torch.diff(torch.nn.functional.pad(sel, (1, 1)), dim=1)
        starts, ends = (edges == 1).nonzero(), (edges == -1).nonzero()
        lengths.append(ends[:, 1] - starts[:, 1])
    lengths = torch.cat(lengths)
    assert len(lengths) > 2000 and (lengths >= 1).all()
    for k in (1, 2, 3):  # merged spans (about 5% at this rate) bias each share by < 0.02
        assert abs((lengths == k).float().mean().item() - 1 / 3) < 0.05
    assert (lengths > 3).float().mean().item() < 0.05


def test_reproducible_from_the_generator(rng):
    batch = text_batch(8, 30, rng)
    for policy in (MLMMasking(VOCAB, whole_word=True), SpanMasking(VOCAB)):
        a = policy(batch, torch.Generator().manual_seed(1))
        b = policy(batch, torch.Generator().manual_seed(1))
        c = policy(batch, torch.Generator().manual_seed(2))
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.mlm_labels, b.mlm_labels)
        assert not torch.equal(a.mlm_labels, c.mlm_labels)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_runs_on_the_gpu(rng):
    batch = text_batch(64, 64, rng).to("cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    for policy in (MLMMasking(VOCAB, whole_word=True), SpanMasking(VOCAB)):
        out = policy(batch, gen)
        assert out.mlm_labels.is_cuda
        assert not ((out.mlm_labels != IGNORE_INDEX) & ~_maskable(batch)).any()


# ---- bad input ----

@pytest.mark.parametrize("make,error,words", [
    (lambda: MLMMasking(VOCAB, prob=1.5), ValueError, "prob must be a probability"),
    (lambda: MLMMasking(0), ValueError, "vocab_size must be a positive int"),
    (lambda: MLMMasking(100, mask_token_id=103), ValueError, "mask_token_id must be in"),
    (lambda: MLMMasking(VOCAB, mask_prob=0.8, random_prob=0.3), ValueError, "mask_prob \\+ random_prob"),
    (lambda: SpanMasking(VOCAB, max_extra=-1), ValueError, "max_extra"),
])
def test_bad_settings(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_bad_batches(rng):
    batch = text_batch(4, 10, rng)
    with pytest.raises(ValueError, match="whole-word masking needs batch.word_ids"):
        MLMMasking(VOCAB, whole_word=True)(batch.replace(word_ids=None))
    with pytest.raises(TypeError, match="batch.text_mask must be torch.bool"):
        MLMMasking(VOCAB)(batch.replace(text_mask=batch.text_mask.int()))
    with pytest.raises(ValueError, match=r"batch.word_ids must have shape \[4, 10\]"):
        SpanMasking(VOCAB)(batch.replace(word_ids=batch.word_ids[:, :5]))
    with pytest.raises(ValueError, match="word_ids must be < the sequence length"):
        SpanMasking(VOCAB)(batch.replace(word_ids=batch.word_ids + 10))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        MLMMasking(VOCAB)(batch, 123)
    with pytest.raises(RuntimeError, match="batch.text_mask is on meta"):
        MLMMasking(VOCAB)(batch.replace(text_mask=batch.text_mask.to("meta")))
    with pytest.raises(RuntimeError, match="generator is on cpu but the batch is on meta"):
        MLMMasking(VOCAB)(batch.to("meta"), torch.Generator())
    with pytest.raises(TypeError, match="expected a VLBatch"):
        MLMMasking(VOCAB)({"input_ids": batch.input_ids})
