"""Is the embedded corpus visually grounded? A data-side check with a generic model.

Two minimal single-stream transformers (pre-LN, 3 layers, hidden 128, plain
``torch.nn``: no vlengine model code) are trained on the same batches of
``make_pretrain_loader`` to fill masked attribute words (colour, size, shape:
the MANIFEST's ``attribute_words``). One sees the region features and boxes,
the other never sees an image (its text-only accuracy is the best a language
prior can do). Held-out attribute-word accuracy of both is printed every
``--eval-every`` steps (``--record [DIR]`` appends it to DIR/corpus_grounding.csv).

Run: ``python benchmarks/bench_corpus_grounding.py [--corpus DIR] [--steps 800]``
(default corpus: the one ``vlengine pretrain`` uses, built if missing).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import device_name, git_revision  # noqa: E402

from vlengine.data import ensure_embedded_corpus, load_tokenizer, make_pretrain_loader  # noqa: E402
from vlengine.data.loading import CaptionImageDataset, collate_items  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "corpus_grounding.csv")


class TinyVL(torch.nn.Module):
    """Text tokens and region tokens (feature + box -> hidden) in one pre-LN encoder."""

    def __init__(self, vocab_size: int, hidden: int = 128, layers: int = 3, image_size: float = 128.0):
        super().__init__()
        self.image_size = image_size
        self.tok = torch.nn.Embedding(vocab_size, hidden)
        self.pos = torch.nn.Embedding(128, hidden)
        self.typ = torch.nn.Embedding(2, hidden)
        self.vis = torch.nn.Sequential(torch.nn.Linear(2048 + 4, hidden), torch.nn.LayerNorm(hidden))
        layer = torch.nn.TransformerEncoderLayer(hidden, 4, 4 * hidden, 0.0, batch_first=True, norm_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = torch.nn.Linear(hidden, vocab_size)

    def forward(self, batch, ids, use_image: bool) -> torch.Tensor:
        B, T = ids.shape
        x = self.tok(ids) + self.pos(torch.arange(T)) + self.typ(torch.zeros_like(ids))
        keep = batch.text_mask
        if use_image:
            boxes = batch.region_boxes / self.image_size
            v = self.vis(torch.cat([batch.region_features.float(), boxes], -1))
            v = v + self.typ(torch.ones(boxes.shape[:2], dtype=torch.long))
            x, keep = torch.cat([x, v], 1), torch.cat([keep, batch.region_valid], 1)
        return self.out(self.enc(x, src_key_padding_mask=~keep)[:, :T])


def mask_attributes(batch, attribute: torch.Tensor, mask_id: int, generator, prob: float):
    sel = attribute[batch.input_ids] & batch.text_mask & (torch.rand(batch.input_ids.shape, generator=generator) < prob)
    return torch.where(sel, torch.full_like(batch.input_ids, mask_id), batch.input_ids), sel


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=None)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--heldout-captions", type=int, default=600)
    p.add_argument("--record", nargs="?", const=os.path.dirname(RESULTS), default=None, metavar="DIR",
                   help="append the rows to DIR/corpus_grounding.csv (default benchmarks/results/); without it nothing is written")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = args.corpus or ensure_embedded_corpus()
    tok = load_tokenizer(os.path.join(root, "vocab.txt"))
    with open(os.path.join(root, "MANIFEST.json")) as f:
        manifest = json.load(f)
    attribute = torch.zeros(tok.vocab_size, dtype=torch.bool)
    for words in manifest["attribute_words"].values():
        for w in words:
            attribute[tok.vocab[w]] = True
    models = {"with_image": TinyVL(tok.vocab_size), "text_only": TinyVL(tok.vocab_size)}
    opts = {k: torch.optim.AdamW(m.parameters(), args.lr, weight_decay=0.01) for k, m in models.items()}
    loader = iter(make_pretrain_loader(os.path.join(root, "train"), batch_size=args.batch_size, seed=0))
    held = CaptionImageDataset(os.path.join(root, "heldout"))
    held_batch = collate_items([held[(0, i)] for i in range(min(args.heldout_captions, len(held)))])
    g = torch.Generator().manual_seed(0)
    rows, t0 = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = next(loader)
        ids, sel = mask_attributes(batch, attribute, tok.mask_id, g, 0.5)
        for name, model in models.items():
            loss = torch.nn.functional.cross_entropy(model(batch, ids, name == "with_image")[sel], batch.input_ids[sel])
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
        if step % args.eval_every == 0 or step == args.steps:
            ids, sel = mask_attributes(held_batch, attribute, tok.mask_id, torch.Generator().manual_seed(1), 0.3)
            acc = {}
            with torch.no_grad():
                for name, model in models.items():
                    model.eval()
                    pred = model(held_batch, ids, name == "with_image").argmax(-1)
                    acc[name] = (pred[sel] == held_batch.input_ids[sel]).float().mean().item()
                    model.train()
            gain = 100 * (acc["with_image"] - acc["text_only"])
            print(f"step {step:5d}  {time.perf_counter() - t0:6.0f}s  held-out attribute-word accuracy: "
                  f"with image {acc['with_image']:.3f}  text only {acc['text_only']:.3f}  gain {gain:+.1f} points "
                  f"({int(sel.sum())} words)", flush=True)
            rows.append((step, acc["with_image"], acc["text_only"], gain, int(sel.sum())))
    if not args.record:
        return 0
    results = os.path.join(args.record, "corpus_grounding.csv")
    os.makedirs(args.record, exist_ok=True)
    new = not os.path.exists(results)
    with open(results, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["date", "git_rev", "machine", "corpus_seed", "step", "acc_with_image", "acc_text_only",
                        "gain_points", "heldout_words"])
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        for step, a, b, gain, n in rows:
            w.writerow([now, git_revision(), device_name("cpu"), manifest["seed"], step, f"{a:.4f}", f"{b:.4f}",
                        f"{gain:.1f}", n])
    return 0


if __name__ == "__main__":
    sys.exit(main())
