"""A tiny objective + dataset for testing the training machinery without the real models.

Runnable as a script so tests can start it as 1 or 2 ranks:
    python tests/training/tiny.py --out result.json --ds-config '{...}' --train '{...}'
It prints nothing the tests rely on; the result (losses per step) goes to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from vlengine.batch import IGNORE_INDEX, VLBatch  # noqa: E402
from vlengine.tasks.output import TaskOutput, accuracy  # noqa: E402

VOCAB, CLASSES, LENGTH = 50, 4, 6


class TinyDataset(torch.utils.data.Dataset):
    """Token rows whose class is a fixed function of the tokens (learnable, not trivial)."""

    def __init__(self, size: int = 256, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, VOCAB, (size, LENGTH), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i]


def collate(rows: list[torch.Tensor]) -> VLBatch:
    ids = torch.stack(rows)
    return VLBatch(input_ids=ids, text_mask=torch.ones_like(ids, dtype=torch.bool))


class TinyObjective(torch.nn.Module):
    """Two tasks: 'cls' (class = first token mod 4) and 'mlm' (predict masked tokens; uses dropout
    and masking so that RNG restoration and the masking generator matter)."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        torch.manual_seed(1234)
        self.embed = torch.nn.Embedding(VOCAB + 1, 32)  # last id = [MASK]
        self.body = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Dropout(dropout),
                                        torch.nn.Linear(64, 32))
        self.cls_head = torch.nn.Linear(32, CLASSES)
        self.mlm_head = torch.nn.Linear(32, VOCAB + 1)

    def prepare_batch(self, batch: VLBatch, task: str, generator: torch.Generator) -> VLBatch:
        if task != "mlm":
            return batch
        masked = torch.rand(batch.input_ids.shape, generator=generator) < 0.3
        labels = torch.where(masked, batch.input_ids, torch.full_like(batch.input_ids, IGNORE_INDEX))
        return batch.replace(input_ids=torch.where(masked, torch.full_like(batch.input_ids, VOCAB), batch.input_ids),
                             mlm_labels=labels)

    def forward(self, batch: VLBatch, task: str = "cls") -> TaskOutput:
        hidden = self.body(self.embed(batch.input_ids))
        if task == "cls":
            logits = self.cls_head(hidden.mean(1))
            labels = batch.input_ids[:, 0] % CLASSES
            loss = torch.nn.functional.cross_entropy(logits, labels)
            return TaskOutput(loss, {"cls_loss": loss.detach(), "cls_acc": accuracy(logits, labels)})
        logits = self.mlm_head(hidden)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch.mlm_labels.flatten(),
                                                 ignore_index=IGNORE_INDEX)
        return TaskOutput(loss, {"mlm_loss": loss.detach(), "mlm_acc": accuracy(logits, batch.mlm_labels)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--ds-config", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--tasks", default='{"cls": 1.0}')
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--dropout", type=float, default=0.0)
    args = parser.parse_args()

    from vlengine.data.loading import BatchPlan, ResumableStream
    from vlengine.training.engine import exit_process, init_distributed, shutdown_distributed
    from vlengine.training.loop import train
    from vlengine.training.settings import TrainSettings
    from vlengine.training.task_mixing import TaskMixer

    rank, world = init_distributed()
    settings = TrainSettings.from_dict(json.loads(args.train))
    data = TinyDataset()
    # The same resumable stream the pretraining loader is made of (vlengine.data.loading).
    loader = ResumableStream(data, BatchPlan(len(data), batch_size=args.micro_batch, rank=rank, world_size=world,
                                             seed=settings.seed, drop_last=True), collate)
    result = train(TinyObjective(args.dropout), loader, json.loads(args.ds_config), settings,
                   TaskMixer(json.loads(args.tasks), seed=settings.seed))
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump({"losses": result.losses, "tasks": result.tasks, "start_step": result.start_step,
                       "final_step": result.final_step, "metrics": result.last_metrics,
                       "exported": result.exported}, f)
    shutdown_distributed()
    exit_process(0)


if __name__ == "__main__":
    main()
