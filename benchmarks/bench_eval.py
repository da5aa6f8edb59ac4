"""Downstream evaluation throughput: VQA examples/s and retrieval ITM pairs/s (full ranking and two-stage).

What runs is the library's own evaluation path, on a random-weight model (weights do not change
the cost) over synthetic inputs written in the official formats and converted into a temporary
annotation set and region store (36 regions x 2048 features per image, as the bottom-up detector
gives), so store reads, tokenisation and collation are timed too:

* ``vqa``: ``predict_sharded`` over a ``VqaDataset`` with ``AnswerModel`` (3,129 answers), one row
  per head (``answer_slot``: ``[CLS] q [SEP] [MASK] [SEP]``, ~14 tokens; ``pooled_mlp``: ``[CLS] q
  [SEP]``, ~12 tokens); examples/s.
* ``retrieval``: ``evaluate_retrieval`` over a Karpathy-format grid of ``--images`` x
  ``--captions-per-image`` (~12-token captions) with ``RetrievalModel``. ``full``: every caption x
  image pair through the ITM cross-encoder; ``two_stage``: one dual-encoder pass per caption and per
  image, then ITM on each caption's ``--k`` best images and each image's ``--k`` best captions,
  deduplicated. ITM passes are the count ``evaluate_retrieval`` reports, checked against the rows the
  ITM head actually saw (a forward hook); pairs/s = ITM passes / wall time (two-stage: its wall
  time includes the dual-encoder passes); "vs full" = full's wall time / two-stage's, same grid.
* ``flickr30k`` rows: pass COUNTS at Flickr30K test size (1K images x 5K captions, k = 128) from
  the formula the code uses (``top_k_candidates``: min(k, images) per caption plus min(k, captions)
  per image, deduplicated, so between the larger of the two and their sum; "vs full" = 5M / that
  sum). Counts, not timings: nothing is extrapolated.

The model is VLConfig.base() (``--size tiny`` for smoke runs), eval mode, fp32 on the CPU and
``--precision`` autocast on a GPU. Before timing, one small batch goes through each model (thread
pools, first-use allocations); ``--warmup`` whole passes are run untimed on top of that.

    python benchmarks/bench_eval.py --threads 2                    # CPU: small grid, base size
    python benchmarks/bench_eval.py --device cuda                  # larger default grid, bf16 autocast
    python benchmarks/bench_eval.py --parts retrieval --images 16 --captions-per-image 5 --k 4

Nothing is written unless ``--record [DIR]`` is given (rows go to DIR/eval.csv, default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import statistics
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import RESULTS_DIR, _RssSampler, append_records, device_name, git_revision, time_fn  # noqa: E402

from vlengine.data.convert.annotation_base import convert_annotations  # noqa: E402
from vlengine.data.convert.karpathy import KarpathySource  # noqa: E402
from vlengine.data.convert.vqa import VqaSource  # noqa: E402
from vlengine.data.store import StoreWriter, open_store  # noqa: E402
from vlengine.data.text import load_tokenizer, write_vocab  # noqa: E402
from vlengine.metrics.vqa import AnswerVocab  # noqa: E402
from vlengine.models import VLBert, VLConfig  # noqa: E402
from vlengine.tasks.downstream import (AnswerModel, RetrievalDataset, RetrievalModel, VqaDataset,  # noqa: E402
                                       collate_downstream, evaluate_retrieval, predict_sharded)
from vlengine.tasks.downstream.pairs import pair_batch  # noqa: E402
from vlengine.tasks.downstream.retrieval_eval import sides  # noqa: E402

REGIONS, FEATURES, NUM_ANSWERS = 36, 2048, 3129
QUESTION_WORDS, CAPTION_WORDS = 9, 10   # + "?" and specials: 14 tokens with the answer slot, 12 without; captions 12
FLICKR30K = dict(images=1000, captions=5000, k=128)
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
WORDS = ("a man woman dog cat horse red blue green two three people sitting riding standing on in the of grass "
         "street beach table near next to with small large white black young old playing water tree").split()


# ---- synthetic inputs, in the official formats, through the converters ----

def _sentences(rng, count: int, words: int, end: str) -> list[str]:
    return [" ".join(rng.choice(WORDS, words)) + end for _ in range(count)]


def write_inputs(root: str, args, seed: int = 0):
    """(tokenizer, region store, VQA annotation set, Karpathy annotation set, answer vocabulary) under ``root``."""
    rng = np.random.default_rng(seed)
    tok = load_tokenizer(write_vocab(WORDS + ["?"], os.path.join(root, "vocab.txt")))
    vqa_images = max(1, -(-args.questions // 5))            # VQA v2 has ~5 questions per image
    vqa_ids = [100 + i for i in range(vqa_images)]
    flickr_ids = [str(1000000 + i) for i in range(args.images)]
    with StoreWriter(os.path.join(root, "store"), feature_dim=FEATURES) as w:
        for image_id in [f"COCO_val2014_{i:012d}" for i in vqa_ids] + flickr_ids:
            xy = rng.uniform(0, 400, (REGIONS, 2))
            boxes = np.concatenate([xy, xy + rng.uniform(16, 200, (REGIONS, 2))], 1)
            feats = rng.standard_normal((REGIONS, FEATURES)).astype(np.float32)
            w.add_image(image_id, boxes, (600, 800), features=feats)
    store = open_store(os.path.join(root, "store"))

    answers = [f"answer{i}" for i in range(NUM_ANSWERS)]
    questions = _sentences(rng, args.questions, QUESTION_WORDS, " ?")
    qs = [{"image_id": vqa_ids[i % vqa_images], "question": q, "question_id": i} for i, q in enumerate(questions)]
    anns = [{"question_id": i, "image_id": vqa_ids[i % vqa_images], "answer_type": "other", "question_type": "what",
             "multiple_choice_answer": answers[i % NUM_ANSWERS],
             "answers": [{"answer": answers[(i + j // 4) % NUM_ANSWERS], "answer_confidence": "yes", "answer_id": j + 1}
                         for j in range(10)]} for i in range(args.questions)]
    q_path, a_path = os.path.join(root, "questions.json"), os.path.join(root, "annotations.json")
    with open(q_path, "w") as f:
        json.dump({"data_subtype": "val2014", "task_type": "Open-Ended", "questions": qs}, f)
    with open(a_path, "w") as f:
        json.dump({"annotations": anns}, f)
    vqa = convert_annotations(VqaSource(q_path, a_path, image_id_template="COCO_{data_subtype}_{image_id:012d}"),
                              os.path.join(root, "vqa_set"), progress=False)

    images = [{"filename": f"{name}.jpg", "split": "test",
               "sentences": [{"raw": c, "tokens": [], "sentid": 10 * i + j}
                             for j, c in enumerate(_sentences(rng, args.captions_per_image, CAPTION_WORDS, ""))]}
              for i, name in enumerate(flickr_ids)]
    k_path = os.path.join(root, "dataset_flickr30k.json")
    with open(k_path, "w") as f:
        json.dump({"images": images, "dataset": "flickr30k"}, f)
    karpathy = convert_annotations(KarpathySource(k_path, ["test"]), os.path.join(root, "karpathy_set"),
                                   progress=False)
    return tok, store, vqa, karpathy, AnswerVocab(answers)


# ---- timing ----

def model_config(size: str, vocab_size: int) -> VLConfig:
    if size == "tiny":   # smoke runs: the real feature and answer sizes, a few narrow layers
        return VLConfig.tiny(region_feature_size=FEATURES, vocab_size=vocab_size, num_region_classes=1601)
    return getattr(VLConfig, size)()


def timed(fn, args, autocast) -> tuple[list[float], float, object]:
    """(wall seconds of ``--repeats`` calls after ``--warmup``, peak MB during them, the last result).
    Peak: CUDA allocator peak beyond what was allocated before; CPU: resident-set growth, sampled."""
    result = []

    def call():
        with autocast, torch.no_grad():
            result[:] = [fn()]

    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        times = time_fn(call, args.device, warmup=args.warmup, repeats=args.repeats)
        peak = torch.cuda.max_memory_allocated() - before
    else:
        with _RssSampler() as sampler:
            times = time_fn(call, args.device, warmup=args.warmup, repeats=args.repeats)
        peak = sampler.growth
    return times, peak / 2**20, result[0]


def _row(part, mode, times, peak_mb, **fields) -> dict:
    median = statistics.median(times)
    return {"part": part, "mode": mode, "kind": "measured", "wall_s_median": round(median, 4),
            "wall_s_min": round(min(times), 4), "wall_s_max": round(max(times), 4), "repeats": len(times),
            "peak_mem_mb": round(peak_mb, 1), **fields}


def mean_tokens(items) -> float:
    return round(float(np.mean([int(np.count_nonzero(it["input_ids"])) for it in items])), 1)


def bench_vqa(args, tok, store, aset, vocab, autocast) -> list[dict]:
    rows = []
    for head in args.heads:
        ds = VqaDataset(aset, store, tok, vocab, answer_slot=head == "answer_slot")
        torch.manual_seed(0)
        model = AnswerModel(VLBert(model_config(args.size, tok.vocab_size)), len(vocab), head=head)
        model = model.to(args.device).eval()
        with autocast, torch.no_grad():   # first use (thread pools, allocations) kept out of the timings
            model.predict(collate_downstream([ds[0], ds[1 % len(ds)]], tok.pad_id, len(vocab)).to(args.device))
        times, peak, results = timed(lambda: predict_sharded(model, ds, args.vqa_batch, args.device), args, autocast)
        assert len(results) == len(ds), "predict_sharded lost examples"
        median = statistics.median(times)
        rows.append(_row("vqa", head, times, peak, items=len(ds), batch=args.vqa_batch,
                         text_tokens=mean_tokens(ds[i] for i in range(len(ds))), regions=REGIONS,
                         per_s=round(len(ds) / median, 3), unit="examples/s"))
        print(f"  vqa {head:<11} {median:9.2f} s  {len(ds) / median:9.2f} examples/s", flush=True)
    return rows


def bench_retrieval(args, tok, store, aset, autocast) -> list[dict]:
    ds = RetrievalDataset(aset, store, tok)
    torch.manual_seed(0)
    model = RetrievalModel(VLBert(model_config(args.size, tok.vocab_size)), objective="both")
    model = model.to(args.device).eval()
    texts, images = sides(ds)
    with autocast, torch.no_grad():
        one = torch.zeros(2, dtype=torch.int64)
        model.itm_scores(pair_batch(texts, one, images, one).to(args.device))
    seen = [0]   # (caption, image) rows the ITM head scored: the passes actually run
    model.itm.register_forward_hook(lambda module, inputs, output: seen.__setitem__(0, seen[0] + inputs[0].shape[0]))
    n_text, n_image = len(ds), ds.num_images
    caption_tokens = mean_tokens(ds.caption_item(i) for i in range(n_text))
    rows = []
    full_median = None
    for mode in args.modes:
        seen[0] = 0
        times, peak, out = timed(lambda: evaluate_retrieval(model, ds, mode=mode, k=args.k, batch_size=args.itm_batch,
                                                            device=args.device), args, autocast)
        runs = args.warmup + len(times)
        passes = out[f"{mode}_itm_pairs"]
        if seen[0] != passes * runs:
            raise RuntimeError(f"{mode}: evaluate_retrieval reports {passes} ITM pairs per run, the head saw "
                               f"{seen[0] / runs:g}")
        median = statistics.median(times)
        full_median = median if mode == "full" else full_median
        extra = {}
        if mode == "two_stage":
            extra = {"k": args.k, "embed_passes": n_text + n_image,
                     "itm_pass_bound": n_text * min(args.k, n_image) + n_image * min(args.k, n_text)}
        rows.append(_row("retrieval", mode, times, peak, items=n_text * n_image, captions=n_text, images=n_image,
                         batch=args.itm_batch, itm_passes=passes, text_tokens=caption_tokens, regions=REGIONS,
                         per_s=round(passes / median, 3), unit="ITM pairs/s",
                         vs_full=round(full_median / median, 3) if mode != "full" and full_median else None,
                         **extra))
        print(f"  retrieval {mode:<9} {median:9.2f} s  {passes} ITM passes  {passes / median:9.2f} pairs/s", flush=True)
    return rows


def flickr30k_counts(k: int = FLICKR30K["k"]) -> list[dict]:
    """ITM and dual-encoder pass counts at Flickr30K test size, from top_k_candidates' rule: counts, not timings."""
    c, i = FLICKR30K["captions"], FLICKR30K["images"]
    per_caption, per_image = c * min(k, i), i * min(k, c)
    common = {"part": "flickr30k", "kind": "count", "items": c * i, "captions": c, "images": i}
    return [{**common, "mode": "full", "itm_passes": c * i, "embed_passes": 0},
            {**common, "mode": "two_stage", "k": k, "itm_passes": per_caption + per_image,
             "itm_passes_min": max(per_caption, per_image), "itm_pass_bound": per_caption + per_image,
             "embed_passes": c + i, "vs_full": round(c * i / (per_caption + per_image), 3)}]


def print_table(rows: list[dict]) -> None:
    print(f"\n{'part':<10} {'mode':<12} {'grid / examples':>15} {'batch':>5} {'text tok':>8} {'ITM passes':>18} "
          f"{'embed':>6} {'median s':>9} {'min-max s':>15} {'per s':>10} {'unit':<12} {'vs full':>8} {'peak MB':>8}")
    for r in rows:
        grid = f"{r['captions']}x{r['images']}" if "captions" in r else str(r["items"])
        if r["kind"] == "count":
            passes = (f"{r['itm_passes_min']:,}-{r['itm_passes']:,}" if "itm_passes_min" in r
                      else f"{r['itm_passes']:,}")
            print(f"{r['part']:<10} {r['mode']:<12} {grid:>15} {'-':>5} {'-':>8} {passes:>18} {r['embed_passes']:>6,} "
                  f"{'-':>9} {'-':>15} {'-':>10} {'-':<12} {_x(r.get('vs_full')):>8} {'-':>8}  "
                  f"counts from the formula, not timings" + (f" (k={r['k']})" if "k" in r else ""))
            continue
        passes = "-" if "itm_passes" not in r else (
            f"{r['itm_passes']:,}" + (f" (<={r['itm_pass_bound']:,})" if "itm_pass_bound" in r else ""))
        spread = f"{r['wall_s_min']:.2f}-{r['wall_s_max']:.2f}"
        print(f"{r['part']:<10} {r['mode']:<12} {grid:>15} {r['batch']:>5} {r['text_tokens']:>8} {passes:>18} "
              f"{r.get('embed_passes', '-'):>6} {r['wall_s_median']:>9.2f} {spread:>15} {r['per_s']:>10.2f} "
              f"{r['unit']:<12} {_x(r.get('vs_full')):>8} {r['peak_mem_mb']:>8.0f}" +
              (f"  k={r['k']}" if "k" in r else ""))


def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--size", default="base", choices=["tiny", "base", "large"], help="model size (tiny: smoke runs)")
    p.add_argument("--parts", default="vqa,retrieval")
    p.add_argument("--heads", default="answer_slot,pooled_mlp", help="VQA heads")
    p.add_argument("--modes", default="full,two_stage", help="retrieval modes")
    p.add_argument("--questions", type=int, default=None, help="VQA questions (default: CPU 32, GPU 2048)")
    p.add_argument("--vqa-batch", type=int, default=None, help="VQA batch size (default: CPU 16, GPU 256)")
    p.add_argument("--images", type=int, default=None, help="retrieval images (default: CPU 8, GPU 64)")
    p.add_argument("--captions-per-image", type=int, default=5, help="captions per image (Flickr30K, COCO: 5)")
    p.add_argument("--k", type=int, default=None, help="two-stage candidates per query (default: CPU 2, GPU 16)")
    p.add_argument("--itm-batch", type=int, default=None, help="pairs per ITM forward (default: CPU 32, GPU 256)")
    p.add_argument("--repeats", type=int, default=None, help="timed passes (default: CPU 2, GPU 5)")
    p.add_argument("--warmup", type=int, default=None, help="untimed whole passes (default: CPU 0, GPU 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--precision", default="bf16", choices=sorted(AUTOCAST_DTYPES) + ["fp32"],
                   help="autocast dtype on a GPU (the CPU runs fp32)")
    p.add_argument("--record", nargs="?", const=RESULTS_DIR, default=None, metavar="DIR",
                   help="append the rows to DIR/eval.csv (default benchmarks/results/); without it nothing is written")
    p.add_argument("--smoke", action="store_true", help="tiny model and inputs, 1 pass: checks the script runs")
    args = p.parse_args(argv)
    gpu = args.device == "cuda"
    if gpu and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is visible")
    if args.smoke:
        args.size = "tiny"
        for name, value in dict(questions=6, vqa_batch=4, images=3, captions_per_image=2, k=1, itm_batch=4,
                                repeats=1, warmup=0).items():
            if getattr(args, name) in (None, p.get_default(name)):
                setattr(args, name, value)
    defaults = dict(questions=(2048, 32), vqa_batch=(256, 16), images=(64, 8), k=(16, 2), itm_batch=(256, 32),
                    repeats=(5, 2), warmup=(1, 0))
    for name, (on_gpu, on_cpu) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, on_gpu if gpu else on_cpu)
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    args.heads, args.modes = args.heads.split(","), args.modes.split(",")
    autocast = (torch.autocast("cuda", dtype=AUTOCAST_DTYPES[args.precision]) if gpu and args.precision != "fp32"
                else contextlib.nullcontext())
    dtype = f"{args.precision}-autocast" if gpu and args.precision != "fp32" else "fp32"

    print(f"bench_eval: {args.size} model, {args.device} ({device_name(args.device)}), {dtype}, "
          f"{torch.get_num_threads()} threads; {REGIONS} regions x {FEATURES} per image")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vlengine-bench-eval-") as root:
        tok, store, vqa_set, karpathy_set, vocab = write_inputs(root, args)
        if "vqa" in parts:
            rows += bench_vqa(args, tok, store, vqa_set, vocab, autocast)
        if "retrieval" in parts:
            rows += bench_retrieval(args, tok, store, karpathy_set, autocast)
    if "retrieval" in parts:
        rows += flickr30k_counts()
    print_table(rows)
    print(f"device {device_name(args.device)}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"git {git_revision()}")
    if args.record:
        meta = {"timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "git": git_revision(), "device": device_name(args.device), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "size": args.size, "dtype": dtype}
        path = append_records(os.path.join(args.record, "eval.csv"), [{**meta, **r} for r in rows])
        print(f"appended {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
