"""`vlengine finetune`: fine-tuning on DeepSpeed (VQA v2, GQA, NLVR2, image-text retrieval, RefCOCO+, VCR).

examples:
  vlengine finetune                       the embedded corpus's questions (VQA v2 format), from the main
                                          job's export (runs/main-job/model_fp32.safetensors) when present,
                                          beside a question-only baseline (the same head, images removed)
  vlengine finetune --config train/configs/finetune/vqa_vlbert_base.yaml --init EXPORT.safetensors
  vlengine finetune --task retrieval        the embedded corpus's retrieval split: ITM and dual encoder, then
                                          full ITM ranking beside two-stage re-ranking
  vlengine finetune --task refcoco         the embedded corpus's referring expressions (refer toolkit files,
                                          ground-truth boxes): accuracy beside a random region's and a
                                          geometry-only baseline (the same head, region features zeroed)
  vlengine finetune --task vcr             the embedded corpus's multiple-choice questions (VCR's files and
                                          token format): Q->A, QA->R, Q->AR beside a text-only baseline
  vlengine finetune --task gqa --config FILE --set task.head_lr_multiplier=10
  vlengine finetune --print-config        show the resolved config and exit

The run writes into train.output_dir (default runs/finetune-<task>): checkpoints (resumed by running the
same command again), TensorBoard, plots, eval/ (official metrics JSON and the submission file) and
model_fp32.safetensors, which `vlengine evaluate --checkpoint` reads with no other file.
Multi-GPU / multi-node: the same command under DeepSpeed's launcher (train/finetune.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from vlengine._cli_errors import OneLineParser, debug_enabled, enable_debug, guarded
from vlengine._config import UserError
from .cli import _require_deepspeed, _resume_hint, _use_cpu_accelerator_without_gpu
from .finetune_config import EMBEDDED_TASKS, TASKS

MAIN_JOB_EXPORT = os.path.join("runs", "main-job", "model_fp32.safetensors")
# where the baseline run (task.with_image=false) writes, beside the run: what it keeps of the input
BASELINE_SUFFIX = {"refcoco": "-geometry-only", "vcr": "-text-only"}
DEFAULT_BASELINE_SUFFIX = "-question-only"
# task -> (the baseline's short name, what its run keeps, what the gap measures); None: the answer tasks
BASELINE_WHAT = {None: ("question only", "question only (image removed)", "the image"),
                 "refcoco": ("geometry only", "geometry only (region features zeroed)", "the region features"),
                 "vcr": ("text only", "text only (image and grounding removed)", "the image")}
BASELINE_KEYS = {"vcr": ("vcr_q_a", "vcr_qa_r", "vcr_q_ar")}   # the metrics compared with the baseline's


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="vlengine finetune", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=TASKS,
                   help="the task (sets task.name)")
    p.add_argument("--init", help="an engine export (.safetensors), a BERT folder, or 'none' (fresh weights)")
    p.add_argument("--config", help="fine-tuning config (.yaml/.json); default: the shipped finetune_<task>.yaml "
                                    f"({', '.join(EMBEDDED_TASKS)})")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (repeatable), e.g. --set train.lr=5e-5")
    p.add_argument("--output-dir", help="checkpoints, eval/, TensorBoard, model_fp32.safetensors")
    p.add_argument("--no-resume", action="store_true", help="start fresh even if output-dir holds a checkpoint")
    p.add_argument("--evaluate", action="store_true", help="a run that already finished: evaluate it again")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--debug", action="store_true", help="show full tracebacks (also: VLENGINE_DEBUG=1)")
    p.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)  # set by the deepspeed launcher
    return p


def _shipped(task: str) -> str:
    """The shipped no-argument job of a task (the embedded corpus has sets for EMBEDDED_TASKS)."""
    from .config import shipped_config, shipped_config_dir

    path = shipped_config(f"finetune_{task}.yaml")
    if not os.path.isfile(path):
        template = os.path.join(shipped_config_dir(), "finetune", f"{task}_semvlp_base.yaml")
        raise UserError(f"--task {task} needs --config naming its converted data (the embedded corpus has sets "
                        f"for {', '.join(EMBEDDED_TASKS)} only); a template: {template}")
    return path


def load_config(args):
    """The config a run uses: file (or the shipped VQA job) + --task / --init / --set / flags."""
    from .finetune_config import FinetuneConfig

    cfg = FinetuneConfig.from_file(args.config or _shipped(args.task or "vqa"))
    overrides = []
    if args.task:
        overrides.append(f"task.name={args.task}")
    if args.init:
        overrides.append("init=null" if args.init == "none" else f"init={args.init}")
    overrides += list(args.set)
    if args.output_dir:
        overrides.append(f"train.output_dir={args.output_dir}")
    if args.no_resume:
        overrides.append("train.resume=false")
    if args.evaluate:
        overrides.append("train.eval_if_finished=true")
    cfg = cfg.with_overrides(overrides) if overrides else cfg
    if not args.config and not args.init and cfg.init is None:
        # The shipped job starts from the main job's export when `vlengine pretrain` was run here.
        if os.path.isfile(MAIN_JOB_EXPORT):
            cfg = cfg.with_overrides([f"init={MAIN_JOB_EXPORT}"])
        else:
            cfg.notes.append(f"no {MAIN_JOB_EXPORT} (run `vlengine pretrain` first to fine-tune the main job's "
                             "model): starting from fresh weights")
    if not cfg.train.output_dir:
        cfg = cfg.with_overrides([f"train.output_dir=runs/finetune-{cfg.task.name}"])
    return cfg


def _finetune(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.debug:
        enable_debug()
    cfg = load_config(args)
    for note in cfg.notes:
        print(f"vlengine finetune: note: {note}", file=sys.stderr)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    cfg.check_before_run()
    from .run_config import check_resume_target
    check_resume_target(cfg.train.output_dir, cfg.train.resume, cfg.to_dict())
    runs = [cfg]
    if cfg.eval.question_only_baseline and cfg.task.with_image:
        baseline = cfg.with_overrides(["task.with_image=false",
                                       f"train.output_dir={cfg.train.output_dir.rstrip('/')}"
                                       f"{BASELINE_SUFFIX.get(cfg.task.name, DEFAULT_BASELINE_SUFFIX)}"])
        check_resume_target(baseline.train.output_dir, baseline.train.resume, baseline.to_dict())
        runs.append(baseline)
    _require_deepspeed()
    _use_cpu_accelerator_without_gpu()
    import torch.distributed as dist

    from .finetune_run import run_finetuning

    results = []
    for run in runs:
        start = time.time()
        try:
            result = run_finetuning(run)
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            if os.environ.get("RANK", "0") == "0":
                print(f"vlengine finetune: interrupted; {_resume_hint(run)}", file=sys.stderr)
            return 130
        results.append((run, result, time.time() - start))
    if dist.get_rank() == 0:
        _summary(results)
    from .engine import shutdown_distributed
    shutdown_distributed()
    return 0


def _summary(results) -> None:
    from vlengine.atomic import write_json

    print()
    for run, result, elapsed in results:
        what = "with the image" if run.task.with_image else BASELINE_WHAT.get(run.task.name, BASELINE_WHAT[None])[1]
        print(f"fine-tuning {run.task.name}, {what}: steps {result.start_step} -> {result.final_step} in "
              f"{elapsed / 60:.1f} min; {run.train.output_dir}")
        for name, value in result.eval_metrics.items():
            print(f"  {name:<40} {value:.0f}" if name.endswith("_passes") else f"  {name:<40} {value:.2f}")
        if run.train.output_dir and (result.eval_metrics or result.final_step > result.start_step):
            write_json(os.path.join(run.train.output_dir, "eval.json"),
                       {"eval": result.eval_metrics, "final_step": result.final_step, "minutes": elapsed / 60,
                        "with_image": run.task.with_image, "train_metrics": result.last_metrics}, indent=1)
    grounding = results[0][0].task.name == "refcoco"
    if grounding and "refcoco_chance_acc" in results[0][1].eval_metrics:
        # a text-only model has no region to choose: chance is its level, exact from the candidates per example
        metrics = results[0][1].eval_metrics
        print(f"held-out refcoco_acc: {metrics['refcoco_acc']:.2f} fine-tuned, {metrics['refcoco_chance_acc']:.2f} "
              f"choosing a random candidate region: {metrics['refcoco_acc'] - metrics['refcoco_chance_acc']:+.2f} "
              "points")
    if len(results) == 2:
        task = results[0][0].task.name
        baseline, source = BASELINE_WHAT.get(task, BASELINE_WHAT[None])[::2]
        for key in BASELINE_KEYS.get(task, (f"{task}_acc",)):
            with_image, without = (r.eval_metrics.get(key) for _, r, _ in results)
            if with_image is not None and without is not None:
                print(f"held-out {key}: {with_image:.2f} with the image, {without:.2f} {baseline}: "
                      f"{with_image - without:+.2f} points from {source}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return guarded("vlengine finetune", _finetune, argv)


if __name__ == "__main__":
    from .engine import exit_process
    exit_process(main())

