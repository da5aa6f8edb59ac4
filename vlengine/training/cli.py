"""`vlengine pretrain`: pretraining on DeepSpeed from a config, or the built-in main job.

    vlengine pretrain                              the main job: a small VL-BERT on the embedded corpus
    vlengine pretrain --config FILE.yaml           any recipe (train/configs/*.yaml)
    vlengine pretrain --set train.total_steps=50   override single settings (section.key=value)
    vlengine pretrain --print-config               show the resolved config and exit
    vlengine pretrain export CKPT_DIR OUT.safetensors [--tag TAG]   fp32 weights of a checkpoint

Multi-GPU / multi-node: start the same command under DeepSpeed's launcher, e.g.
    deepspeed --hostfile hostfile train/pretrain.py --config train/configs/vlbert_base_v100_fp16.yaml
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _use_cpu_accelerator_without_gpu() -> None:
    """DeepSpeed picks its accelerator at import; on a machine without a GPU make that the CPU (gloo)."""
    if "DS_ACCELERATOR" in os.environ:
        return
    import torch
    if not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlengine pretrain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="pretraining config (.yaml or .json); default: the built-in main job")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (repeatable), e.g. --set train.lr=1e-4")
    p.add_argument("--output-dir", help="checkpoints, TensorBoard events, exported weights, eval.json")
    p.add_argument("--no-resume", action="store_true", help="start fresh even if output-dir holds a checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)  # set by the deepspeed launcher
    return p


def _export(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="vlengine pretrain export",
                                description="write the fp32 weights of a checkpoint to one safetensors file")
    p.add_argument("checkpoint_dir", help="the folder holding `latest` and the step* checkpoints")
    p.add_argument("out", help="output .safetensors file")
    p.add_argument("--tag", default=None, help="checkpoint tag (default: the one `latest` names)")
    args = p.parse_args(argv)
    _use_cpu_accelerator_without_gpu()
    from .checkpoint import export_fp32_safetensors
    shapes = export_fp32_safetensors(args.checkpoint_dir, args.out, args.tag)
    print(f"wrote {len(shapes)} tensors ({sum(_numel(s) for s in shapes.values()) / 1e6:.2f}M values) to {args.out}")
    return 0


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "export":
        return _export(argv[1:])
    args = _parser().parse_args(argv)
    from .config import PretrainConfig
    from .main_job import MAIN_JOB

    try:
        cfg = PretrainConfig.from_file(args.config) if args.config else PretrainConfig.from_dict(MAIN_JOB, source="main job")
        overrides = list(args.set)
        if args.output_dir:
            overrides.append(f"train.output_dir={args.output_dir}")
        if args.no_resume:
            overrides.append("train.resume=false")
        if overrides:
            cfg = cfg.with_overrides(overrides)
    except (ValueError, TypeError) as err:
        print(f"vlengine pretrain: {err}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    _use_cpu_accelerator_without_gpu()
    from .run import run_pretraining

    start = time.time()
    result = run_pretraining(cfg)
    import torch.distributed as dist
    if dist.get_rank() == 0:
        elapsed = time.time() - start
        _summary(result, elapsed, cfg)
    from .engine import shutdown_distributed
    shutdown_distributed()
    return 0


def _summary(result, elapsed: float, cfg) -> None:
    ev = result.eval_metrics
    print(f"\npretraining finished: steps {result.start_step} -> {result.final_step} in {elapsed / 60:.1f} min")
    if ev:
        rows = [("MLM accuracy on attribute words, with the image", ev.get("attr_mlm_acc_with_image")),
                ("MLM accuracy on attribute words, image removed", ev.get("attr_mlm_acc_without_image")),
                ("visual-clue gain (points)", ev.get("visual_clue_gain_points")),
                ("masked region classification accuracy", ev.get("masked_region_acc")),
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
    if cfg.train.output_dir:
        from vlengine.atomic import write_json
        path = os.path.join(cfg.train.output_dir, "eval.json")
        os.makedirs(cfg.train.output_dir, exist_ok=True)
        write_json(path, {"eval": ev, "final_step": result.final_step, "minutes": elapsed / 60,
                          "train_metrics": result.last_metrics}, indent=1)
        print(f"results: {path}; TensorBoard: tensorboard --logdir {os.path.join(cfg.train.output_dir, 'tensorboard')}")


if __name__ == "__main__":
    from .engine import exit_process
    exit_process(main())
