"""Distributed evaluation scores every example exactly once: 3 gloo ranks (spawned processes) over
10 VQA questions (an uneven split: 3 + 3 + 4), results gathered on rank 0 by question id and equal
to a single-process run; a duplicated id is caught."""

import os
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vlengine.metrics.vqa import AnswerVocab
from vlengine.models import VLBert, VLConfig
from vlengine.tasks.downstream import (AnswerModel, RetrievalDataset, RetrievalModel, VqaDataset, evaluate_retrieval,
                                       gather_results, predict_sharded, shard_range)

from downstream_files import karpathy_set, region_store, tokenizer, vqa_set

WORLD = 3
NUM_QUESTIONS = 10
VOCAB = ["red", "blue", "2", "no", "yes"]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 10, 11, 97])
@pytest.mark.parametrize("world", [1, 3, 4, 8])
def test_shards_partition_the_examples(n, world):
    shards = [shard_range(n, r, world) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))          # each once, in order, none dropped
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    with pytest.raises(ValueError, match="rank 3 is not in"):
        shard_range(n, 3, 3)


def make_inputs(tmp_path):
    tok = tokenizer(tmp_path)
    region_store(tmp_path, [f"COCO_val2014_{i:012d}" for i in range(4)])
    questions = [(1000 + q, q % 4, ["What color is the dog?", "Is it raining?", "How many dogs are there?"][q % 3],
                  [VOCAB[q % 5]] * 10) for q in range(NUM_QUESTIONS)]
    vqa_set(tmp_path, questions)
    captions = ["a red cat.", "two dogs sitting on grass.", "a man riding a horse.", "a blue bird.", "one dog.",
                "a picture of a cat.", "a horse on grass.", "birds sitting on a man."]
    karpathy_set(tmp_path, {f"COCO_val2014_{i:012d}.jpg": captions[2 * i:2 * i + 2 - i % 2] for i in range(4)})
    return tok


def build(tmp_path):
    tok = tokenizer(tmp_path)
    ds = VqaDataset(str(tmp_path / "vqa_set"), str(tmp_path / "store"), tok, AnswerVocab(VOCAB))
    torch.manual_seed(0)
    model = AnswerModel(VLBert(VLConfig.tiny(vocab_size=tok.vocab_size)), len(VOCAB))
    scored = []
    predict = model.predict

    def counting_predict(batch):
        scored.extend(batch.extras["example_index"].tolist())
        return predict(batch)

    model.predict = counting_predict
    return ds, model, scored


def build_retrieval(tmp_path):
    tok = tokenizer(tmp_path)
    ds = RetrievalDataset(str(tmp_path / "karpathy_set"), str(tmp_path / "store"), tok)
    torch.manual_seed(1)
    # visual LayerNorms start at 1, not VL-BERT's 0: a random model then tells images apart (no near-ties
    # that float rounding of differently sharded batches could flip)
    config = VLConfig.tiny(vocab_size=tok.vocab_size, visual_ln_init=1.0)
    return ds, RetrievalModel(VLBert(config), objective="both")


def _worker(rank, tmp_path, results):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rendezvous", rank=rank, world_size=WORLD)
    try:
        ds, model, scored = build(tmp_path)
        merged = predict_sharded(model, ds, batch_size=2)
        results.put(("scored", rank, scored))
        results.put(("merged", rank, merged))
        ds, model = build_retrieval(tmp_path)
        results.put(("retrieval", rank, evaluate_retrieval(model, ds, mode="both", k=2, batch_size=3)))
        try:
            gather_results({"dup": rank, f"own-{rank}": rank})
        except RuntimeError as exc:
            results.put(("duplicate", rank, str(exc)))
        else:
            results.put(("duplicate", rank, None))
    except Exception:
        results.put(("error", rank, traceback.format_exc()))
        raise
    finally:
        dist.destroy_process_group()
    os._exit(0)   # skip the interpreter teardown (see tests/ops/test_contrastive_distributed.py)


def test_three_ranks_score_each_example_once(tmp_path):
    make_inputs(tmp_path)
    ds, model, scored = build(tmp_path)
    single = predict_sharded(model, ds, batch_size=4)
    assert sorted(scored) == list(range(NUM_QUESTIONS)) and len(single) == NUM_QUESTIONS
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_worker, args=(tmp_path, results), nprocs=WORLD, join=True)
    got = {}
    while not results.empty():
        kind, rank, value = results.get()
        assert kind != "error", value
        got[(kind, rank)] = value
    per_rank = [got[("scored", r)] for r in range(WORLD)]
    assert [len(s) for s in per_rank] == [3, 3, 4]                  # uneven, no padding duplicates
    assert sorted(i for s in per_rank for i in s) == list(range(NUM_QUESTIONS))
    assert got[("merged", 1)] is None and got[("merged", 2)] is None
    assert got[("merged", 0)] == single                             # keyed by question id, same predictions
    assert set(single) == {1000 + q for q in range(NUM_QUESTIONS)}
    assert "example 'dup' was scored twice" in got[("duplicate", 0)]
    assert got[("duplicate", 1)] is None and got[("duplicate", 2)] is None
    # retrieval: pairs (full and two-stage) and embeddings sharded over the ranks, the same result on rank 0
    ds, model = build_retrieval(tmp_path)
    assert got[("retrieval", 0)] == evaluate_retrieval(model, ds, mode="both", k=2, batch_size=3)
    assert got[("retrieval", 0)]["full_itm_pairs"] == 6 * 4
    assert got[("retrieval", 0)]["two_stage_itm_pairs"] <= (6 + 4) * 2
    assert got[("retrieval", 1)] is None and got[("retrieval", 2)] is None


def test_missing_example_is_reported():
    with pytest.raises(RuntimeError, match="1 examples not scored"):
        gather_results({"a": 1}, expected_ids=["a", "b"])
