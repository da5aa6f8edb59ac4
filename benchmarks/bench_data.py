"""Data-path throughput: store vs TSV reading, converter speed, memory as workers are added.

Measures, on records of ``--boxes`` regions x 2048 features (default 100, as the issue asks):

* ``store``: samples/s of one loader process (num_workers=0) reading caption-image
  samples from the memory-mapped store in shuffled order, collated into VLBatch
  (features float16 [B, 100, 2048]);
* ``tsv``: samples/s reading the same records from an LXMERT TSV file, in file order
  (its best case), decoding base64 and casting features to float16, collated the same way;
* ``convert``: records/s of ``vlengine data convert`` from TSV (the records above), and from a
  UNITER LMDB (msgpack-numpy, float16) and an npz directory (``--convert-records`` records);
* ``workers``: peak private dirty memory (smaps Private_Dirty: pages only that process wrote)
  of each loader worker and the growth of the main process over one epoch, for 0/1/2/4 workers. The store's pages are
  file-backed and shared, so a worker holds only its interpreter and a few batches in flight,
  whatever the dataset size; a loader that copied the features into every worker would hold
  the whole feature data per worker.

Prints a table; ``--record [DIR]`` appends rows to DIR/data.csv (default benchmarks/results/) with the
git revision.
Run: ``python benchmarks/bench_data.py [--records 1000] [--boxes 100]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import device_name, git_revision  # noqa: E402

from vlengine.data.convert import TsvSource, convert  # noqa: E402
from vlengine.data.convert.tsv import FIELDS, parse_tsv_line, write_tsv_line  # noqa: E402
from vlengine.data.loading import collate_items, make_pretrain_loader  # noqa: E402
from vlengine.data.store import open_store  # noqa: E402
from vlengine.data.text import load_tokenizer, write_vocab  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "data.csv")


def make_sources(root: str, records: int, boxes: int, seed: int = 0):
    """An LXMERT TSV of ``records`` images and a JSON-lines captions file."""
    rng = np.random.default_rng(seed)
    tsv = os.path.join(root, "feats.tsv")
    caps = os.path.join(root, "caps.jsonl")
    with open(tsv, "w") as f, open(caps, "w") as g:
        for i in range(records):
            xy = rng.uniform(0, 400, (boxes, 2)).astype(np.float32)
            b = np.concatenate([xy, xy + rng.uniform(1, 200, (boxes, 2)).astype(np.float32)], 1)
            feats = rng.standard_normal((boxes, 2048), dtype=np.float32)
            write_tsv_line(f, f"img{i}", (480, 640), b, feats, objects_id=rng.integers(0, 1600, boxes))
            g.write(f'{{"image_id": "img{i}", "caption": "a man riding a horse on the beach"}}\n')
    vocab = write_vocab("a man riding horse on the beach".split(), os.path.join(root, "vocab.txt"))
    return tsv, caps, vocab


def bench_convert(tsv, caps, vocab, out):
    t = time.perf_counter()
    convert(TsvSource([tsv]), out, vocab_file=vocab, captions_file=caps, progress=False, overwrite=True)
    return time.perf_counter() - t


def bench_other_converters(root, records: int, boxes: int, seed: int = 1) -> list:
    """records/s of the LMDB (UNITER msgpack-numpy values) and npz-directory converters."""
    import lmdb
    import msgpack

    from vlengine.data.convert import LmdbSource, NpzDirSource
    rng = np.random.default_rng(seed)
    db, npz_dir = os.path.join(root, "feat.lmdb"), os.path.join(root, "npz")
    os.makedirs(npz_dir, exist_ok=True)
    env = lmdb.open(db, map_size=1 << 34)
    with env.begin(write=True) as txn:
        for i in range(records):
            feats = rng.standard_normal((boxes, 2048), dtype=np.float32)
            xy = rng.uniform(0, 0.5, (boxes, 2)).astype(np.float32)
            bb = np.concatenate([xy, xy + 0.3, np.full((boxes, 3), 0.09, np.float32)], 1)
            value = {"features": feats.astype(np.float16), "norm_bb": bb.astype(np.float16)}
            enc = {k.encode(): {b"nd": True, b"type": v.dtype.str, b"kind": b"", b"shape": list(v.shape),
                                b"data": v.tobytes()} for k, v in value.items()}
            txn.put(f"img{i}".encode(), msgpack.packb(enc, use_bin_type=True))
            np.savez(os.path.join(npz_dir, f"img{i}.npz"), features=feats, boxes=bb[:, :4] * 600,
                     image_h=600, image_w=600)
    env.close()
    out = []
    for name, src in (("lmdb", LmdbSource(db)), ("npz", NpzDirSource(npz_dir))):
        t = time.perf_counter()
        convert(src, os.path.join(root, f"store-{name}"), progress=False, overwrite=True)
        out.append(("convert", f"{name}->store records/s", records / (time.perf_counter() - t), "records/s"))
    return out


def bench_store(store_path, samples, batch_size):
    loader = make_pretrain_loader(store_path, batch_size=batch_size, num_workers=0, seed=1)
    it = iter(loader)
    next(it)  # warm-up: first batch builds the plan
    n, t = 0, time.perf_counter()
    while n < samples:
        b = next(it)
        n += b.batch_size
    dt = time.perf_counter() - t
    assert b.region_features.shape[1:] == (loader.captions.dataset.store.image(0)["num_boxes"], 2048)
    return n / dt


def bench_tsv(tsv, samples, batch_size, tokenizer, boxes):
    """The same work from the TSV: parse, decode, cast to float16, tokenize, collate."""
    fields = FIELDS["lxmert"]
    enc = tokenizer.encode("a man riding a horse on the beach")
    n, t = 0, time.perf_counter()
    while n < samples:
        with open(tsv, "rb") as f:
            batch = []
            for lineno, line in enumerate(f, 1):
                rec = parse_tsv_line(line, f"{tsv} line {lineno}", fields, 2048)
                batch.append({"input_ids": enc.ids, "word_ids": enc.word_ids, "boxes": rec.boxes,
                              "labels": rec.labels, "image_size": np.asarray(rec.image_size, np.float32),
                              "features": rec.features.astype(np.float16)})
                if len(batch) == batch_size:
                    collate_items(batch)
                    n += len(batch)
                    batch = []
                    if n >= samples:
                        break
    return n / (time.perf_counter() - t)


def _private_kb(pid: int) -> int:
    """Private dirty memory (kB): pages this process alone has written (its heap, its copies of
    copy-on-write pages). Mapped store pages are clean and shared with the page cache, so
    reading them adds nothing here; a copy of the features in a worker would."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Private_Dirty:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def worker_memory(store_path, workers, batch_size):
    """Peak private dirty memory (MiB) of the busiest loader worker, and the growth of the main
    process, while reading one epoch; plus the samples read."""
    import threading
    loader = make_pretrain_loader(store_path, batch_size=batch_size, num_workers=workers, epochs=1, seed=2)
    me = os.getpid()
    peaks: dict[int, int] = {}
    stop = threading.Event()

    def children():
        try:
            with open(f"/proc/{me}/task/{me}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def sample():
        while not stop.is_set():
            for pid in [me] + children():
                peaks[pid] = max(peaks.get(pid, 0), _private_kb(pid))
            time.sleep(0.01)

    base = _private_kb(me)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    rows = 0
    for b in loader:
        rows += b.batch_size
    stop.set()
    th.join()
    main_growth = max(0, peaks.get(me, base) - base) / 1024
    worker_peak = max((v for pid, v in peaks.items() if pid != me), default=0) / 1024
    return worker_peak, main_growth, rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--boxes", type=int, default=100)
    p.add_argument("--samples", type=int, default=4000, help="samples timed per reader")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", default="0,1,2,4")
    p.add_argument("--convert-records", type=int, default=300, help="records for the lmdb/npz converter timings")
    p.add_argument("--dir", default=None, help="scratch directory (default: a temp dir, removed after)")
    p.add_argument("--record", nargs="?", const=os.path.dirname(RESULTS), default=None, metavar="DIR",
                   help="append the rows to DIR/data.csv (default benchmarks/results/); without it nothing is written")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message=".*worker processes in total.*")
    root = args.dir or tempfile.mkdtemp(prefix="vlengine-bench-data-")
    os.makedirs(root, exist_ok=True)
    rows = []
    try:
        t = time.perf_counter()
        tsv, caps, vocab = make_sources(root, args.records, args.boxes)
        print(f"wrote {args.records} TSV records ({os.path.getsize(tsv) / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f}s")
        store_path = os.path.join(root, "store")
        dt = bench_convert(tsv, caps, vocab, store_path)
        rows.append(("convert", "tsv->store records/s", args.records / dt, "records/s"))
        rows += bench_other_converters(root, min(args.records, args.convert_records), args.boxes)
        tok = load_tokenizer(vocab)
        # warm the page cache for both (a loader in steady state reads cached pages)
        open_store(store_path, verify="full")
        with open(tsv, "rb") as f:
            while f.read(1 << 24):
                pass
        store_rate = bench_store(store_path, args.samples, args.batch_size)
        tsv_rate = bench_tsv(tsv, min(args.samples, args.records), args.batch_size, tok, args.boxes)
        rows.append(("read", "store samples/s (1 process, shuffled)", store_rate, "samples/s"))
        rows.append(("read", "tsv samples/s (1 process, sequential)", tsv_rate, "samples/s"))
        rows.append(("read", "store / tsv", store_rate / tsv_rate, "x"))
        feature_mb = sum(os.path.getsize(os.path.join(store_path, d, "features.bin"))
                         for d in os.listdir(store_path) if d.startswith("regions-")) / 2**20
        rows.append(("memory", "feature data in the store", feature_mb, "MiB"))
        batch_mb = args.batch_size * args.boxes * 2048 * 2 / 2**20
        rows.append(("memory", f"one batch of features ({args.batch_size} x {args.boxes} x 2048 fp16)", batch_mb, "MiB"))
        for w in (int(x) for x in args.workers.split(",")):
            worker_mb, main_mb, n = worker_memory(store_path, w, args.batch_size)
            if w:
                rows.append(("memory", f"peak private memory of the busiest worker, {w} workers ({n} samples)", worker_mb, "MiB"))
            rows.append(("memory", f"peak private memory growth of the main process, {w} workers", main_mb, "MiB"))
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    machine = device_name("cpu")
    rev = git_revision()
    print(f"\nbench_data: {args.records} records x {args.boxes} boxes x 2048, batch {args.batch_size}; {machine}; rev {rev}")
    print(f"{'benchmark':<8} {'measure':<58} {'value':>12}")
    for kind, what, value, unit in rows:
        print(f"{kind:<8} {what:<58} {value:>10.1f} {unit}")
    if not args.record:
        return 0
    results = os.path.join(args.record, "data.csv")
    os.makedirs(args.record, exist_ok=True)
    new = not os.path.exists(results)
    with open(results, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["date", "git_rev", "machine", "records", "boxes", "batch_size", "benchmark", "measure", "value", "unit"])
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        for kind, what, value, unit in rows:
            w.writerow([now, rev, machine, args.records, args.boxes, args.batch_size, kind, what, f"{value:.2f}", unit])
    return 0


if __name__ == "__main__":
    sys.exit(main())
