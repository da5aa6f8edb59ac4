"""`vlengine pretrain`: pretraining on DeepSpeed from a config (default: the shipped main job).

examples:
  vlengine pretrain                              the main job: a small VL-BERT on the embedded corpus
  vlengine pretrain --config FILE.yaml           any recipe (train/configs/*.yaml)
  vlengine pretrain --set train.total_steps=50   override single settings (section.key=value)
  vlengine pretrain --print-config               show the resolved config and exit
  vlengine pretrain export RUN/checkpoints OUT.safetensors [--tag TAG]   fp32 weights of a checkpoint

Paths in a config file are relative to the file; paths on the command line to the working directory.
`train.processes: N` starts N ranks on this machine (CPU data parallel) without a launcher.
Multi-GPU / multi-node: start the same command under DeepSpeed's launcher, e.g.
  deepspeed --hostfile hostfile train/pretrain.py --config train/configs/vlbert_base_v100_fp16.yaml
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from vlengine._cli_errors import OneLineParser, debug_enabled, enable_debug, guarded
from vlengine._config import UserError


def _use_cpu_accelerator_without_gpu() -> None:
    """DeepSpeed picks its accelerator at import; on a machine without a GPU make that the CPU (gloo)."""
    if "DS_ACCELERATOR" in os.environ:
        return
    import torch
    if not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"


def _require_deepspeed() -> None:
    import importlib.util

    try:
        found = importlib.util.find_spec("deepspeed") is not None
    except (ImportError, ValueError):  # a broken or blocked install
        found = False
    if not found:
        raise UserError("DeepSpeed is not installed: install the [train] extra (pip install 'vlengine[train]')")


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="vlengine pretrain", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="pretraining config (.yaml or .json); default: the shipped main_job.yaml")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (repeatable), e.g. --set train.lr=1e-4")
    p.add_argument("--output-dir", help="checkpoints, TensorBoard events, config.yaml, exported weights, eval.json")
    p.add_argument("--no-resume", action="store_true", help="start fresh even if output-dir holds a checkpoint")
    p.add_argument("--evaluate", action="store_true",
                   help="resuming a run that already finished: evaluate it again (otherwise it only says so)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--debug", action="store_true", help="show full tracebacks (also: VLENGINE_DEBUG=1)")
    p.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)  # set by the deepspeed launcher
    return p


def _export(argv: list[str]) -> int:
    p = OneLineParser(prog="vlengine pretrain export",
                      description="write the fp32 weights of a checkpoint to one safetensors file "
                                  "(and the run's config.yaml beside it)")
    p.add_argument("checkpoint_dir", help="the run's checkpoints/ folder (the one holding `latest` and step*)")
    p.add_argument("out", help="output .safetensors file")
    p.add_argument("--tag", default=None, help="checkpoint tag, e.g. step000001000 (default: the one `latest` names)")
    p.add_argument("--debug", action="store_true", help="show full tracebacks (also: VLENGINE_DEBUG=1)")
    args = p.parse_args(argv)
    if args.debug:
        enable_debug()
    from .export_checks import check_export_source, copy_run_config
    check_export_source(args.checkpoint_dir, args.tag)
    _use_cpu_accelerator_without_gpu()
    import pickle

    from .checkpoint import export_fp32_safetensors
    try:
        shapes = export_fp32_safetensors(args.checkpoint_dir, args.out, args.tag)
    except pickle.UnpicklingError as err:
        found = [line.strip() for line in str(err).splitlines() if "Unsupported global" in line]
        raise UserError(f"{args.checkpoint_dir}: the checkpoint holds more than tensors and plain data "
                        f"({found[0].split(' was not')[0] if found else 'unknown objects'}); export reads "
                        "weights only and does not unpickle objects") from None
    print(f"wrote {len(shapes)} tensors ({sum(_numel(s) for s in shapes.values()) / 1e6:.2f}M values) to {args.out}")
    config = copy_run_config(args.checkpoint_dir, args.out)
    if config:
        print(f"wrote the run's config to {config}")
    return 0


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "export":
        return guarded("vlengine pretrain export", _export, argv[1:])
    return guarded("vlengine pretrain", _pretrain, argv)


def load_config(args) -> "PretrainConfig":  # noqa: F821 (imported lazily)
    """The config a run uses: file (or the shipped main job) + --set / --output-dir / --no-resume."""
    from .config import PretrainConfig, shipped_config

    cfg = PretrainConfig.from_file(args.config or shipped_config())
    overrides = list(args.set)
    if args.output_dir:
        overrides.append(f"train.output_dir={args.output_dir}")
    if args.no_resume:
        overrides.append("train.resume=false")
    if args.evaluate:
        overrides.append("train.eval_if_finished=true")
    return cfg.with_overrides(overrides) if overrides else cfg


def _pretrain(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.debug:
        enable_debug()
    cfg = load_config(args)
    for note in cfg.notes:
        print(f"vlengine pretrain: note: {note}", file=sys.stderr)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    # Everything a user can get wrong is checked here, in well under a second, before DeepSpeed starts.
    cfg.check_before_run()
    from .run_config import check_resume_target
    check_resume_target(cfg.train.output_dir, cfg.train.resume, cfg.to_dict())
    _require_deepspeed()
    _use_cpu_accelerator_without_gpu()
    from .local_ranks import run_local_ranks, under_launcher
    if cfg.train.processes > 1 and not under_launcher():
        return run_local_ranks(cfg.train.processes, argv)
    from .run import run_pretraining

    start = time.time()
    try:
        result = run_pretraining(cfg)
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        if os.environ.get("RANK", "0") == "0":
            print(f"vlengine pretrain: interrupted; {_resume_hint(cfg)}", file=sys.stderr)
        return 130
    import torch.distributed as dist
    if dist.get_rank() == 0:
        elapsed = time.time() - start
        _summary(result, elapsed, cfg)
    from .engine import shutdown_distributed
    shutdown_distributed()
    return 0


def _resume_hint(cfg) -> str:
    from .run_config import last_checkpoint

    if not cfg.train.output_dir:
        return "this run saved no checkpoints (no train.output_dir)"
    latest = last_checkpoint(cfg.train.output_dir)
    if latest is None:
        return (f"no checkpoint saved yet in {cfg.train.output_dir} (train.save_every={cfg.train.save_every}): "
                "the same command starts over")
    return f"last checkpoint {latest}: run the same command again to resume from it"


def _summary(result, elapsed: float, cfg) -> None:
    ev = result.eval_metrics
    print(f"\npretraining finished: steps {result.start_step} -> {result.final_step} in {elapsed / 60:.1f} min")
    if ev:
        rows = [("MLM accuracy on attribute words, with the image", ev.get("attr_mlm_acc_with_image")),
                ("MLM accuracy on attribute words, image removed", ev.get("attr_mlm_acc_without_image")),
                ("visual-clue gain (points)", ev.get("visual_clue_gain_points")),
                ("masked region classification accuracy", ev.get("masked_region_acc")),
                ("masked region accuracy from vision alone (leak)", ev.get("masked_region_acc_vision_only")),
                ("  chance (majority class of those regions)", ev.get("masked_region_chance")),
                ("zero-shot retrieval R@1 (text->image)", ev.get("retrieval_t2i_r1")),
                ("zero-shot retrieval R@1 (image->text)", ev.get("retrieval_i2t_r1"))]
        print("held-out evaluation:")
        for name, value in rows:
            if value is not None:
                text = f"{value:.1f}" if "points" in name else f"{100 * value:.1f}%"
                print(f"  {name:<52} {text}")
        if "retrieval_candidates" in ev:
            print(f"  (retrieval over {int(ev['retrieval_candidates'])} images / captions; "
                  f"{int(ev['attr_words'])} masked attribute words)")
    if cfg.train.output_dir and (ev or result.final_step > result.start_step):  # a finished run keeps its results
        from vlengine.atomic import write_json
        path = os.path.join(cfg.train.output_dir, "eval.json")
        os.makedirs(cfg.train.output_dir, exist_ok=True)
        write_json(path, {"eval": ev, "final_step": result.final_step, "minutes": elapsed / 60,
                          "train_metrics": result.last_metrics}, indent=1)
        print(f"results: {path}; TensorBoard: tensorboard --logdir {os.path.join(cfg.train.output_dir, 'tensorboard')}")


if __name__ == "__main__":
    from .engine import exit_process
    exit_process(main())
