"""Loading: VLBatch contents, sharding, token budgets, ITM negatives, corpus mixing, resume."""

import os

import numpy as np
import pytest
import torch

from vlengine.batch import IGNORE_INDEX, VLBatch
from vlengine.data.loading import (BatchPlan, ResumableStream, TextChunkDataset, make_pretrain_loader, shard_indices,
                                   token_budget_batches)
from vlengine.data.store import open_store
from vlengine.data.text import load_tokenizer


def _take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def _same(a: VLBatch, b: VLBatch):
    for name in ("input_ids", "text_mask", "word_ids", "region_features", "region_boxes", "region_valid",
                 "region_labels", "text_only", "itm_label"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert torch.equal(x, y), name


def test_batch_matches_the_store(small_corpus):
    path = os.path.join(small_corpus, "train")
    store = open_store(path)
    batch = _take(make_pretrain_loader(path, batch_size=8, max_regions=5), 1)[0]
    assert isinstance(batch, VLBatch) and batch.batch_size == 8
    assert batch.region_features.dtype == torch.float16 and batch.region_features.shape[1:] == (5, 2048)
    for row in range(8):
        cap = store.caption(int(batch.extras["caption_index"][row]))
        rec = store.image(cap["image_index"])
        n = min(5, rec["num_boxes"])
        t = len(cap["token_ids"])
        assert batch.input_ids[row, :t].tolist() == cap["token_ids"].tolist()
        assert batch.text_mask[row].sum() == t and (batch.input_ids[row, t:] == 0).all()
        assert batch.word_ids[row, 0] == -1 and batch.word_ids[row, t - 1] == -1
        assert batch.region_valid[row].sum() == n
        np.testing.assert_array_equal(batch.region_features[row, :n].numpy(), rec["features"][:n])
        assert batch.region_labels[row, 0] == IGNORE_INDEX  # whole-image region has no class
        assert (batch.region_labels[row, n:] == IGNORE_INDEX).all()


def test_sharding_is_disjoint_complete_and_deterministic():
    for n, world in ((101, 4), (64, 8), (7, 7)):
        for epoch in (0, 3):
            parts = [shard_indices(n, r, world, seed=5, epoch=epoch) for r in range(world)]
            joined = np.concatenate(parts)
            assert sorted(joined.tolist()) == list(range(n))                   # complete and disjoint
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
            again = [shard_indices(n, r, world, seed=5, epoch=epoch) for r in range(world)]
            assert all(np.array_equal(a, b) for a, b in zip(parts, again))    # deterministic
        assert not np.array_equal(shard_indices(n, 0, world, 5, 0), shard_indices(n, 0, world, 5, 1))
    with pytest.raises(ValueError, match="rank"):
        shard_indices(10, 2, 2, 0, 0)


def test_loader_ranks_cover_the_epoch(small_corpus):
    path = os.path.join(small_corpus, "train")
    seen = []
    for rank in range(3):
        loader = make_pretrain_loader(path, batch_size=64, rank=rank, world_size=3, epochs=1, seed=9)
        seen.append(torch.cat([b.extras["caption_index"] for b in loader]).tolist())
    assert sorted(sum(seen, [])) == list(range(len(open_store(path).captions)))


def test_token_budget_batches():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 60, 500)
    idx = rng.permutation(500)
    batches = token_budget_batches(idx, lengths, max_tokens=400, seed=1, epoch=0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    assert all(len(b) * lengths[b].max() <= 400 for b in batches)
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.25 * lengths.sum()  # buckets keep padding low
    with pytest.raises(ValueError, match="longest sample"):
        token_budget_batches(idx, lengths, max_tokens=30, seed=1, epoch=0)


def test_token_budget_loader(small_corpus):
    loader = make_pretrain_loader(os.path.join(small_corpus, "train"), batch_size=None, max_tokens=600, epochs=1)
    rows = 0
    for b in loader:
        per_row = b.text_mask.sum(1) + b.region_valid.sum(1)
        assert b.batch_size * int(per_row.max()) <= 600
        rows += b.batch_size
    assert rows == 240 * 5


def test_itm_negatives(small_corpus):
    path = os.path.join(small_corpus, "train")
    store = open_store(path)
    batches = _take(make_pretrain_loader(path, batch_size=100, itm_negative_prob=0.5, epochs=1), 12)
    labels = torch.cat([b.itm_label for b in batches])
    assert 0.4 < labels.float().mean() < 0.6
    images_of = {}
    for j in range(len(store.captions)):
        c = store.caption(j)
        images_of.setdefault(tuple(c["token_ids"].tolist()), set()).add(c["image_index"])
    for b in batches[:3]:
        for row in range(b.batch_size):
            cap = store.caption(int(b.extras["caption_index"][row]))
            image = int(b.extras["image_index"][row])
            shown = b.input_ids[row][b.text_mask[row]].tolist()
            if b.itm_label[row] == 1:
                assert shown == cap["token_ids"].tolist() and cap["image_index"] == image
            else:
                assert shown != cap["token_ids"].tolist() or cap["image_index"] != image
                # the caption shown belongs to another image
                assert images_of[tuple(shown)] - {image}


def test_text_chunks(tmp_path, small_corpus):
    tok = load_tokenizer(os.path.join(small_corpus, "vocab.txt"))
    f = tmp_path / "t.txt"
    f.write_text("a red circle left of a blue square .\n\n" * 40)
    ds = TextChunkDataset(str(f), tok, chunk_len=16)
    stream = tok.encode_plain("a red circle left of a blue square .").ids.tolist() * 40
    got = []
    for i in range(len(ds)):
        it = ds[i]
        assert len(it["input_ids"]) <= 16 and it["input_ids"][0] == tok.cls_id and it["input_ids"][-1] == tok.sep_id
        assert it["word_ids"][1] == 0
        got += it["input_ids"][1:-1].tolist()
    assert got == stream
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n\xff\xfe broken\n")
    with pytest.raises(ValueError, match="bad.txt.*UTF-8"):
        TextChunkDataset(str(bad), tok)


@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_text_only_mixing(small_corpus, ratio):
    loader = make_pretrain_loader(os.path.join(small_corpus, "train"), batch_size=6, text_batch_size=4,
                                  text_corpus=os.path.join(small_corpus, "text", "corpus.txt"), text_ratio=ratio)
    batches = _take(loader, 8)
    text_rows = sum(int(b.text_only.sum()) for b in batches)
    assert text_rows == int(8 * ratio) * 4
    for b in batches:
        assert (~b.text_only).sum() == 6
        assert not b.region_valid[b.text_only].any()             # text-only rows have no regions
        assert b.region_valid[~b.text_only].any(1).all()
        assert (b.input_ids[b.text_only][:, 0] == 101).all()


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_reproduces_the_rest(small_corpus, workers):
    path = os.path.join(small_corpus, "train")
    kw = dict(batch_size=32, itm_negative_prob=0.5, text_corpus=os.path.join(small_corpus, "text", "corpus.txt"),
              rank=1, world_size=2, seed=3, num_workers=workers)
    full = _take(make_pretrain_loader(path, **kw), 24)          # crosses an epoch boundary (19 batches/epoch)
    first = make_pretrain_loader(path, **kw)
    it = iter(first)
    for _ in range(7):
        next(it)
    state = first.state_dict()
    resumed = make_pretrain_loader(path, **kw)
    resumed.load_state_dict(state)
    rest = _take(resumed, 17)
    assert resumed.epoch == 1
    for a, b in zip(full[7:], rest, strict=True):
        _same(a, b)
    with pytest.raises(ValueError, match="different setup"):
        make_pretrain_loader(path, **{**kw, "seed": 4}).load_state_dict(state)


def test_bad_loader_arguments(small_corpus):
    path = os.path.join(small_corpus, "train")
    with pytest.raises(ValueError, match="itm_negative_prob"):
        make_pretrain_loader(path, itm_negative_prob=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        BatchPlan(10, batch_size=0)
    with pytest.raises(ValueError, match="sharded over"):
        BatchPlan(3, batch_size=1, world_size=4)


def test_resumable_stream_over_a_store_dataset(small_corpus):
    from vlengine.data.loading import CaptionImageDataset, collate_items
    ds = CaptionImageDataset(os.path.join(small_corpus, "train"), itm_negative_prob=0.5)

    def stream(seed=7, epochs=2):
        return ResumableStream(ds, BatchPlan(len(ds), batch_size=50, rank=0, world_size=2, seed=seed), collate_items,
                               epochs=epochs)

    def rows(batch):
        return (batch.extras["caption_index"].tolist(), batch.itm_label.tolist(), batch.input_ids.tolist())

    full = [rows(b) for b in stream()]
    assert len(full) == 2 * 12 and sorted(i for b in full[:12] for i in b[0]) == sorted(
        shard_indices(len(ds), 0, 2, 7, 0).tolist())
    first = stream()
    for _ in range(15):
        next(first)
    state = first.state_dict()
    again = stream()
    again.load_state_dict(state)
    assert [rows(b) for b in again] == full[15:]        # same captions, same ITM negatives (keyed by epoch)
    assert sum(b.batch_size for b in stream(epochs=1)) == len(shard_indices(len(ds), 0, 2, 7, 0))
    with pytest.raises(ValueError, match="seed"):
        stream(seed=8).load_state_dict(state)
