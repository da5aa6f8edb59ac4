"""The pretraining loop: one readable function around a DeepSpeed engine.

Per optimizer step: draw the task (same on all ranks), then for each of the
engine's gradient-accumulation micro-batches take the next batch, let the
objective prepare it (masking, from a generator seeded by (seed, rank,
micro-step) so a resumed run masks identically), forward, backward, step.
DeepSpeed applies clipping, loss scaling, ZeRO reduction, the optimizer and
the LR schedule at the accumulation boundary.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.distributed as dist

from vlengine._config import ConfigError

from .checkpoint import export_fp32_safetensors, load_checkpoint, save_checkpoint, tag_for_step
from .engine import build_engine, compute_dtype, loss_scale, param_groups
from .monitor import Monitor
from .rng import capture_rng_state, restore_rng_state, seed_everything
from .run_config import CONFIG_FILE, refuse_changed_settings, write_run_config
from .settings import TrainSettings
from .task_mixing import TaskMixer
from .threads import use_rank_threads
from .throughput import ThroughputMeter, model_flops, peak_flops, trainable_parameters


@dataclass
class TrainResult:
    engine: object
    start_step: int
    final_step: int
    losses: list[float] = field(default_factory=list)   # per optimizer step, averaged over ranks
    tasks: list[str] = field(default_factory=list)      # the task of each step
    last_metrics: dict[str, float] = field(default_factory=dict)
    eval_metrics: dict[str, float] = field(default_factory=dict)
    checkpoint_dir: str | None = None
    exported: str | None = None


def micro_step_generator(seed: int, rank: int, micro_step: int) -> torch.Generator:
    """The generator a micro-batch is masked with: a pure function of where the run is."""
    return torch.Generator().manual_seed((seed * 1_000_003 + rank) * 1_000_033 + micro_step)


def _mean_over_ranks(values: dict[str, float], device) -> dict[str, float]:
    """Average metrics over ranks, skipping ranks where a metric was missing (NaN)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return values
    names = sorted(values)
    data = torch.tensor([[values[n] if math.isfinite(values[n]) else 0.0 for n in names],
                         [1.0 if math.isfinite(values[n]) else 0.0 for n in names]], dtype=torch.float64)
    data = data.to(device)
    dist.all_reduce(data)
    data = data.cpu()
    return {n: (data[0, i] / data[1, i]).item() if data[1, i] > 0 else float("nan") for i, n in enumerate(names)}


class _MetricAverager:
    """Means of the objective's metrics between two log lines, summed where they are computed.

    Summing on the device (in float64, as Python floats would) and reading the
    sums once per log line keeps the host from waiting for the accelerator at
    every micro-step. A non-finite value (a metric missing from a batch) is not
    counted, as before."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def add(self, values: dict[str, torch.Tensor | float]) -> None:
        for name, value in values.items():
            value = torch.as_tensor(value).detach().to(torch.float64)
            finite = torch.isfinite(value)
            value = torch.where(finite, value, torch.zeros_like(value))
            if name in self.sums:
                self.sums[name] = self.sums[name] + value
                self.counts[name] = self.counts[name] + finite
            else:
                self.sums[name], self.counts[name] = value, finite.to(torch.int64)

    def pop(self) -> dict[str, float]:
        names = list(self.sums)
        if not names:
            return {}
        # one host transfer for every metric
        sums = torch.stack([self.sums[n].to(self.sums[names[0]].device) for n in names]).tolist()
        counts = torch.stack([self.counts[n].to(self.sums[names[0]].device) for n in names]).tolist()
        self.sums, self.counts = {}, {}
        return {n: s / c if c else float("nan") for n, s, c in zip(names, sums, counts)}


class _StepLosses:
    """Loss of each optimizer step, kept on the device until the next log line, then averaged
    over ranks with one all_reduce and read with one host transfer."""

    MAX_PENDING = 1000  # bounds memory when log_every is 0 (no log lines)

    def __init__(self, world: int, device):
        self.world, self.device = world, device
        self.pending: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor) -> bool:
        """Record one step's loss (a float64 scalar tensor); True when enough are pending to flush."""
        self.pending.append(loss)
        return len(self.pending) >= self.MAX_PENDING

    def flush(self) -> list[float]:
        if not self.pending:
            return []
        values = torch.stack(self.pending).to(self.device)
        self.pending = []
        if self.world > 1:
            dist.all_reduce(values)
            values = values / self.world
        return values.tolist()


def train(module: torch.nn.Module, loader, ds_config: dict, settings: TrainSettings, mixer: TaskMixer,
          evaluate: Callable | None = None, run_config: dict | None = None, *, groups: list[dict] | None = None,
          export_metadata: dict[str, str] | None = None, what: str = "pretraining") -> TrainResult:
    """Pretrain `module` (an objective: forward(batch, task=...) -> TaskOutput) on `loader`.

    `loader` is an endless iterator with state_dict()/load_state_dict() (the data
    position): a vlengine.data.loading.ResumableStream, or the PretrainLoader made
    of two. `evaluate(engine, step) -> dict` runs on every rank at eval_every and
    at the end. `run_config` is stored in checkpoints for the record. Losses and
    metrics stay on the device between log lines (one host read per log line).
    `groups`: optimizer parameter groups (default: decay / no decay). `export_metadata`:
    the header of the exported safetensors (vlengine.models.export: architecture, model
    config), kept in every checkpoint so that `pretrain export` writes it too.
    `what` names the run in its first line ("pretraining", "fine-tuning").
    """
    use_rank_threads(settings.threads)   # ranks x threads <= cores (threads.py)
    seed_everything(settings.seed)
    if groups is None and settings.lr_mult:
        groups = param_groups(module, settings.weight_decay, settings.lr, settings.lr_mult)
    engine = build_engine(module, ds_config, lr=settings.lr, weight_decay=settings.weight_decay,
                          betas=settings.adam_betas, eps=settings.adam_eps,
                          warmup_steps=settings.warmup_steps, total_steps=settings.total_steps, groups=groups)
    rank, world = dist.get_rank(), dist.get_world_size()
    accum = engine.gradient_accumulation_steps()
    dtype = compute_dtype(ds_config)
    ckpt_dir = os.path.join(settings.output_dir, "checkpoints") if settings.output_dir else None

    step = 0
    resumed_from = None
    if ckpt_dir and settings.resume:
        client = load_checkpoint(engine, ckpt_dir)
        if client is not None:
            # The optimizer and schedule just loaded hold lr, weight decay, ... of the saved run: a changed
            # value would be silently overridden, so it is refused (the CLI checks config.yaml earlier).
            saved = client.get("run_config")
            refuse_changed_settings(json.loads(saved) if saved else None, run_config, settings.output_dir)
            mixer.check_state(client["mixer"])
            if len(client["per_rank"]) != world:
                raise ConfigError(f"checkpoint in {ckpt_dir} was saved by {len(client['per_rank'])} ranks; "
                                  f"this run has {world} (data positions and RNG states are per rank): launch "
                                  f"{len(client['per_rank'])} ranks, or pass --no-resume to start over")
            mine = client["per_rank"][rank]
            loader.load_state_dict(mine["data"])
            restore_rng_state(mine["rng"])
            step = int(client["step"])
            resumed_from = os.path.join(ckpt_dir, tag_for_step(step))
    start_step = step
    end_step = settings.max_steps or settings.total_steps
    finished_before = resumed_from is not None and step >= end_step
    if rank == 0 and settings.output_dir and run_config:
        write_run_config(os.path.join(settings.output_dir, CONFIG_FILE), run_config)

    prepare = getattr(module, "prepare_batch", None)
    n_params = trainable_parameters(module)
    flop_params = trainable_parameters(module, exclude_embeddings=True)
    peak, peak_source = peak_flops(engine.device, settings.peak_tflops)
    meter = ThroughputMeter(world, peak)
    tb_dir = os.path.join(settings.output_dir, "tensorboard") if settings.output_dir and settings.tensorboard else None
    monitor = Monitor(settings.total_steps, start_step, tb_dir, enabled=rank == 0, progress=settings.progress,
                      run_dir=settings.output_dir or None)
    monitor.print(f"{what}: {n_params / 1e6:.2f}M trainable parameters, {world} rank(s), "
                  f"micro-batch {engine.train_micro_batch_size_per_gpu()} x accumulation {accum} "
                  f"= {engine.train_batch_size()} samples/step, {dtype}, ZeRO stage {engine.zero_optimization_stage()}, "
                  f"steps {start_step} -> {end_step} of {settings.total_steps}; MFU peak: {peak / 1e12:.3f} TFLOPS "
                  f"({peak_source})")
    if finished_before:
        where = f"step {step} of {end_step}" if step == end_step else f"step {step}, past its last step {end_step}"
        monitor.print(f"run already finished: {where} (checkpoint {resumed_from}); "
                      + ("evaluating it again" if settings.eval_if_finished else
                         "nothing to do (--evaluate evaluates it again; --no-resume starts over)"))
    elif resumed_from:
        monitor.print(f"resuming from step {step} of {end_step} (checkpoint {resumed_from})")

    result = TrainResult(engine=engine, start_step=start_step, final_step=start_step, checkpoint_dir=ckpt_dir)
    averager = _MetricAverager()
    step_losses = _StepLosses(world, engine.device)

    def read_losses() -> list[float]:
        """Host values of the steps since the last read (every rank takes part: an all_reduce)."""
        losses = step_losses.flush()
        result.losses.extend(losses)
        return losses

    def save(at_step: int) -> None:
        per_rank_state = {"data": loader.state_dict(), "rng": capture_rng_state()}
        gathered = [None] * world
        dist.all_gather_object(gathered, per_rank_state)
        client = {"step": at_step, "mixer": mixer.state_dict(), "per_rank": gathered,
                  "run_config": json.dumps(run_config or {}, default=str), "export_metadata": export_metadata}
        save_checkpoint(engine, ckpt_dir, at_step, client, keep_last=settings.keep_last)
        monitor.print(f"saved checkpoint step {at_step} to {ckpt_dir}")

    def run_eval(at_step: int) -> None:
        if evaluate is None:
            return
        engine.eval()
        with torch.no_grad():
            values = evaluate(engine, at_step)
        engine.train()
        result.eval_metrics = dict(values)
        monitor.log(at_step, values, prefix="eval")

    engine.train()
    while step < end_step:
        task = mixer.task_for_step(step)
        step_loss = torch.zeros((), dtype=torch.float64, device=engine.device)
        skipped_before = engine.skipped_steps
        for micro in range(accum):
            batch = next(loader)
            if prepare is not None:
                batch = prepare(batch, task, micro_step_generator(settings.seed, rank, step * accum + micro))
            # counted on the host batch, before it moves: no device sync
            samples, tokens = batch.batch_size, batch.num_tokens
            flops = model_flops(module, batch, tokens, flop_params)
            # floating inputs to the dtype DeepSpeed cast the weights to (fp16 stores, bf16 engines)
            batch = batch.to(engine.device, dtype)
            out = engine(batch, task=task)
            engine.backward(out.loss)
            engine.step()
            # stays on the device (float64, as the Python float sum it replaces): read at the log line
            step_loss = step_loss + out.loss.detach().to(torch.float64) / accum
            averager.add({k: v for k, v in out.metrics.items()})
            meter.add(samples, tokens, flops)
        step += 1
        must_flush = step_losses.add(step_loss)
        result.tasks.append(task)
        log_now = settings.log_every and (step % settings.log_every == 0 or step == end_step)
        losses = read_losses() if log_now or must_flush else []
        monitor.step(step, losses[-1] if losses else None)
        if log_now:
            values = {"loss": losses[-1], **_mean_over_ranks(averager.pop(), engine.device), **meter.report(),
                      "lr": engine.get_lr()[0], "loss_scale": loss_scale(engine),
                      "skipped_steps": float(engine.skipped_steps)}
            result.last_metrics = values
            monitor.log(step, values)
        if engine.skipped_steps > skipped_before:
            monitor.print(f"step {step}: fp16 overflow, update skipped (loss scale now {loss_scale(engine):g})")
        if ckpt_dir and settings.save_every and step % settings.save_every == 0 and step < end_step:
            save(step)
            meter.reset()
        if settings.eval_every and step % settings.eval_every == 0 and step < end_step:
            run_eval(step)
            meter.reset()  # throughput counts training time only

    read_losses()
    result.final_step = step
    export_path = os.path.join(settings.output_dir, "model_fp32.safetensors") if ckpt_dir else None
    # A run killed after its last checkpoint but before the export exports on the rerun.
    if ckpt_dir and (step > start_step or (settings.export_safetensors and not os.path.isfile(export_path))):
        if step > start_step:
            save(step)
        if settings.export_safetensors and rank == 0:
            result.exported = export_path
            export_fp32_safetensors(ckpt_dir, result.exported, metadata=export_metadata)
            monitor.print(f"exported fp32 weights to {result.exported}")
        dist.barrier()
    if not finished_before or settings.eval_if_finished:
        run_eval(step)
    monitor.close()
    return result
