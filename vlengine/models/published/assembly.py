"""Putting published tensors into the engine's export names, and reporting what did not fit.

An ``Assembly`` collects ``put`` (published tensors -> one export tensor), ``skip`` (published keys
with no counterpart, and why) and ``tie`` (a published copy of another tensor). ``finish`` builds a
seeded fresh engine model and heads, checks every put against the fresh tensor's shape, fills
everything the checkpoint lacks from the fresh initialisation, and lists it in the report: so the
export loads strictly, and the report says which numbers are trained and which are random.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field

import torch

from ..config import VLConfig
from ..weights import bert_to_engine
from .reading import PublishedCheckpointError

BACKBONE = "model."
NO_RULE = "no counterpart known to this converter"
BERT_HEAD_DIM = 64      # BERT base (768 / 12) and large (1024 / 16); no tensor shape carries the head count


@dataclass
class Report:
    codebase: str
    source: str
    architecture: str
    mapped: dict[str, list[str]] = field(default_factory=dict)   # published key -> export tensors (with [rows])
    unmapped: dict[str, str] = field(default_factory=dict)       # published key -> why it has no counterpart
    tied: dict[str, str] = field(default_factory=dict)           # published key -> export tensor it duplicates
    fresh: list[str] = field(default_factory=list)               # export tensors (or [rows]) at fresh init
    notes: list[str] = field(default_factory=list)

    def unmapped_groups(self) -> dict[str, int]:
        """Reason -> number of published keys, most keys first."""
        return dict(Counter(self.unmapped.values()).most_common())

    def to_dict(self) -> dict:
        return {**asdict(self), "unmapped_groups": self.unmapped_groups()}


@dataclass
class Conversion:
    architecture: str
    config: VLConfig
    tensors: dict[str, torch.Tensor]      # export names: model.<param>, mlm.<param>, ...
    report: Report


@dataclass
class _Put:
    value: torch.Tensor
    sources: list[tuple[str, int, int]]   # (published key, first row, end row) in the export tensor
    rows: slice | None = None             # None: the whole tensor


def bert_sizes(state: dict[str, torch.Tensor], prefix: str, num_heads: int | None) -> dict:
    """VLConfig sizes of a BERT-shaped subtree (``prefix`` + embeddings / encoder.layer.N / ...)."""
    words = state[f"{prefix}embeddings.word_embeddings.weight"] if f"{prefix}embeddings.word_embeddings.weight" \
        in state else state[f"{prefix}word_embeddings.weight"]
    layer = re.compile(re.escape(prefix) + r"encoder\.layer\.(\d+)\.")
    indices = {int(m.group(1)) for k in state if (m := layer.match(k))}
    if not indices:
        raise PublishedCheckpointError(f"no transformer layers under {prefix}encoder.layer.N")
    hidden = words.shape[1]
    if num_heads is None:
        if hidden % BERT_HEAD_DIM:
            raise PublishedCheckpointError(f"hidden size {hidden} is not a multiple of BERT's 64-d heads: "
                                           "give the number of attention heads (--num-heads)")
        num_heads = hidden // BERT_HEAD_DIM
    return {"vocab_size": words.shape[0], "hidden_size": hidden, "num_layers": max(indices) + 1,
            "num_heads": num_heads,
            "intermediate_size": state[f"{prefix}encoder.layer.0.intermediate.dense.weight"].shape[0]}


class Assembly:
    """Export tensors gathered from one published state dict."""

    def __init__(self, state: dict[str, torch.Tensor], codebase: str, source: str):
        self.state = state
        self.codebase = codebase
        self.source = source
        self.puts: dict[str, _Put] = {}
        self.skipped: dict[str, str] = {}
        self.tied: dict[str, str] = {}
        self.notes: list[str] = []

    def has(self, key: str) -> bool:
        return key in self.state

    def put(self, export_name: str, *keys: str, value: torch.Tensor | None = None) -> bool:
        """``export_name`` <- the published ``keys`` concatenated on dim 0 (or ``value`` made from them).

        Returns False (and puts nothing) when the first key is absent: optional parts of a checkpoint
        (a head the run did not train) need no special case at the call.
        """
        if keys[0] not in self.state:
            return False
        if value is None:
            value = torch.cat([self.state[k] for k in keys]) if len(keys) > 1 else self.state[keys[0]]
        sources, row = [], 0
        for key in keys:
            n = self.state[key].shape[0] if len(keys) > 1 else value.shape[0]
            sources.append((key, row, row + n))
            row += n
        self.puts[export_name] = _Put(value, sources)
        return True

    def put_bert(self, prefix: str, num_layers: int, export_prefix: str = BACKBONE) -> None:
        """Embeddings, encoder layers and pooler of a BERT-named subtree, through ``weights.bert_to_engine``.

        bert_to_engine only renames and concatenates on dim 0, so running it once more on one-column
        tensors holding each key's index tells which published rows form each engine tensor, without
        restating its name table here.
        """
        sub = {k[len(prefix):]: v for k, v in self.state.items() if k.startswith(prefix)}
        names = list(sub)
        probe = {k: torch.full((max(sub[k].shape[0], 1) if sub[k].dim() else 1,), float(i))
                 for i, k in enumerate(names)}
        engine, origins = bert_to_engine(sub, num_layers), bert_to_engine(probe, num_layers)
        for name, value in engine.items():
            sources, ids = [], origins[name].tolist()
            start = 0
            for end in range(1, len(ids) + 1):
                if end == len(ids) or ids[end] != ids[start]:
                    sources.append((prefix + names[int(ids[start])], start, end))
                    start = end
            # BERT has segments A and B; the engine's third (C, regions) keeps its fresh rows
            rows = slice(0, value.shape[0]) if name == "embeddings.token_type_embeddings.weight" else None
            self.puts[export_prefix + name] = _Put(value, sources, rows)

    def put_mlm_head(self, prefix: str) -> None:
        """BERT's ``cls.predictions`` (at ``prefix``) -> the engine's ``mlm`` head; its decoder is the word table."""
        for part in ("transform.dense.weight", "transform.dense.bias", "transform.LayerNorm.weight",
                     "transform.LayerNorm.bias", "bias"):
            self.put(f"mlm.{part}", f"{prefix}.{part}")
        self.tie(f"{prefix}.decoder.weight", BACKBONE + "embeddings.word_embeddings.weight")

    def skip(self, keys_or_prefix, reason: str) -> None:
        """Published keys (a list, or every key starting with a prefix string) that have no counterpart."""
        keys = [k for k in self.state if k.startswith(keys_or_prefix)] if isinstance(keys_or_prefix, str) \
            else [k for k in keys_or_prefix if k in self.state]
        for key in keys:
            self.skipped.setdefault(key, reason)

    def tie(self, key: str, export_name: str) -> None:
        """A published tensor that is a copy of another (a tied MLM decoder): nothing to write."""
        if key in self.state:
            self.tied[key] = export_name

    def finish(self, architecture: str, config: VLConfig, heads: dict, seed: int = 0) -> Conversion:
        """The export tensors of ``architecture`` built with ``config``; ``heads``: prefix -> factory(config, model).

        A head is written when at least one of its tensors came from the checkpoint.
        """
        from vlengine import models

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = getattr(models, architecture)(config)
            fresh = {BACKBONE + n: p.detach() for n, p in model.named_parameters()}
            for prefix, factory in heads.items():
                if any(name.startswith(prefix + ".") for name in self.puts):
                    head = factory(config, model)
                    tied = {id(p) for p in model.parameters()}
                    fresh.update({f"{prefix}.{n}": p.detach() for n, p in head.named_parameters()
                                  if id(p) not in tied})    # the MLM decoder is the backbone's word table
        tensors, report = {}, Report(self.codebase, self.source, architecture, notes=list(self.notes))
        for name, put in self.puts.items():
            if name not in fresh:
                raise ValueError(f"converter bug: {name} is not a tensor of the engine's {architecture}")
            rows = put.rows or slice(0, fresh[name].shape[0])
            full = fresh[name].clone()
            if tuple(put.value.shape) != tuple(full[rows].shape):
                raise PublishedCheckpointError(
                    f"{self.source}: {put.sources[0][0]} has shape {list(put.value.shape)} but the engine's "
                    f"{name} is {list(full[rows].shape)}")
            full[rows] = put.value.to(full.dtype)
            tensors[name] = full
            whole = len(put.sources) == 1 and put.rows is None
            for key, start, end in put.sources:
                where = name if whole else f"{name}[{rows.start + start}:{rows.start + end}]"
                report.mapped.setdefault(key, []).append(where)
            if put.rows is not None:
                report.fresh.extend(_rows_left(name, full.shape[0], rows))
        for name, value in fresh.items():
            if name not in tensors:
                tensors[name] = value.clone()
                report.fresh.append(name)
        report.tied = dict(self.tied)
        for key in self.state:
            if key not in report.mapped and key not in self.tied:
                report.unmapped[key] = self.skipped.get(key, NO_RULE)
        return Conversion(architecture, config, tensors, report)


def _rows_left(name: str, total: int, rows: slice) -> list[str]:
    start, stop, _ = rows.indices(total)
    return [f"{name}[{a}:{b}]" for a, b in ((0, start), (stop, total)) if b > a]
