"""`vlengine evaluate`: a fine-tuned model's official metric and submission file on one split.

examples:
  vlengine evaluate --checkpoint runs/finetune-vqa/model_fp32.safetensors
        (a model fine-tuned on the embedded corpus: its held-out questions)
  vlengine evaluate --task retrieval --checkpoint runs/main-job/model_fp32.safetensors --retrieval-mode full
        (zero-shot: the pretraining ITM head ranks 100 held-out images x 500 captions of the embedded corpus)
  vlengine evaluate --task vqa --checkpoint FILE --split data/vqa-val --images data/coco-features --out results/
  vlengine evaluate --checkpoint runs/vcr-q_a/model_fp32.safetensors --rationale-checkpoint runs/vcr-qa_r/model_fp32.safetensors \
        --split data/vcr/val --images data/vcr/images      (VCR's two models, one per sub-task: Q->AR and the CSV)
  torchrun --nproc_per_node 4 -m vlengine.cli evaluate ...     sharded over ranks, every example scored once

The checkpoint is the fine-tuning run's model_fp32.safetensors: it carries the architecture, the task
settings, the answer vocabulary and the WordPiece vocabulary, so nothing else is needed. --split is an
annotation set from `vlengine data convert --from vqa|gqa|nlvr2|karpathy|refcoco|vcr`; a split without
answers (test) gives the submission file only. Writes OUT/<name>_metrics.json and the submission
(<name>_predictions.json for VQA/GQA/RefCOCO, .csv for NLVR2 and VCR). RefCOCO's IoU settings (pixel convention,
>= or >) and track are the checkpoint's task settings, reported in the metrics JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from vlengine._cli_errors import OneLineParser, enable_debug, guarded
from vlengine._config import UserError

from .finetune_config import EMBEDDED_TASKS, TASKS


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="vlengine evaluate", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="a fine-tuned export (model_fp32.safetensors of a run); with --task retrieval also a "
                        "pretraining export, whose ITM head ranks zero-shot")
    p.add_argument("--task", choices=TASKS,
                   help="checked against the checkpoint's own task")
    p.add_argument("--rationale-checkpoint", help="VCR: a model fine-tuned for QA->R (task.vcr_subtasks qa_r) that "
                                                  "scores the rationales, --checkpoint then a Q->A model: together "
                                                  "Q->A, QA->R, Q->AR and the leaderboard CSV")
    p.add_argument("--split", help="annotation set to score (default for vqa, retrieval, refcoco and vcr: the "
                                   "embedded corpus's held-out questions, its 100-image retrieval test, its held-out "
                                   "referring expressions, or its held-out multiple-choice questions)")
    p.add_argument("--images", help="the region store of the split's images")
    p.add_argument("--out", help="folder for the metrics and submission files (default: beside the checkpoint, eval/)")
    p.add_argument("--name", help="file name stem (default: the split folder's name)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--retrieval-mode", choices=("full", "two_stage", "both"), default="both")
    p.add_argument("--retrieval-k", type=int, default=128, help="two-stage candidates per query")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--debug", action="store_true", help="show full tracebacks (also: VLENGINE_DEBUG=1)")
    return p


def _split_and_images(args, task: str) -> tuple[str, str]:
    if args.split:
        if not args.images:
            raise UserError("--split needs --images (the region store holding the split's images)")
        return args.split, args.images
    if task not in EMBEDDED_TASKS:
        raise UserError(f"--split is required for task {task} (an annotation set from vlengine data convert)")
    from vlengine.data import ensure_embedded_corpus
    from vlengine.tasks.downstream.embedded_sets import (ensure_embedded_refcoco, ensure_embedded_retrieval,
                                                         ensure_embedded_vqa)

    root = ensure_embedded_corpus()
    if task == "retrieval":
        return ensure_embedded_retrieval(root)["test"]
    if task == "refcoco":
        return ensure_embedded_refcoco(root)["val"]
    if task == "vcr":
        from vlengine.tasks.downstream.embedded_vcr import ensure_embedded_vcr
        return ensure_embedded_vcr(root)["val"]
    return ensure_embedded_vqa(root)["heldout"], os.path.join(root, "heldout")


def _rationale_model(args, task, vocab_text: str | None, limits: dict):
    """VCR's QA->R model of --rationale-checkpoint (None without it), checked against the Q->A model: both
    read the same inputs (vocabulary and input limits), one scores answers and the other rationales."""
    if not args.rationale_checkpoint:
        return None
    from .finetune_model import load_finetuned

    if task.name != "vcr" or task.vcr_subtasks == "qa_r":
        raise UserError(f"--rationale-checkpoint goes with a VCR Q->A model; {args.checkpoint} is fine-tuned for "
                        f"{task.name}" + (" QA->R" if task.name == "vcr" else ""))
    try:
        model, other, _, other_vocab, other_limits = load_finetuned(args.rationale_checkpoint, "vcr")
    except ValueError as err:
        raise UserError(str(err)) from None
    if other.name != "vcr" or other.vcr_subtasks == "q_a":
        raise UserError(f"--rationale-checkpoint {args.rationale_checkpoint} is not a VCR QA->R model "
                        f"(task {other.name}, sub-tasks {other.vcr_subtasks})")
    if (other_vocab or "").split() != (vocab_text or "").split() or other_limits != limits:
        raise UserError(f"{args.checkpoint} and {args.rationale_checkpoint} read different inputs (vocabulary or "
                        "input limits): fine-tune both from the same pretraining with the same data settings")
    return model


def _start_group_if_launched() -> None:
    """Under torchrun / the deepspeed launcher (WORLD_SIZE > 1) join the process group; else one process."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def _evaluate(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.debug:
        enable_debug()
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    import torch
    import torch.distributed as dist

    from vlengine.data import load_tokenizer
    from vlengine.tasks.downstream.score_split import headline, score_split

    from .finetune_model import load_finetuned
    from .finetune_run import make_dataset

    try:
        model, task, answers, vocab_text, limits = load_finetuned(args.checkpoint, args.task)
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.task and args.task != task.name:
        raise UserError(f"{args.checkpoint} is fine-tuned for {task.name}, not {args.task}")
    rationale_model = _rationale_model(args, task, vocab_text, limits)
    split, images = _split_and_images(args, task.name)
    _start_group_if_launched()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        vocab = os.path.join(tmp, "vocab.txt")
        with open(vocab, "w", encoding="utf-8") as f:
            f.write(vocab_text or "")
        dataset = make_dataset(task, split, images, load_tokenizer(vocab), limits, answers)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "eval")
    name = args.name or os.path.basename(os.path.normpath(split))
    metrics = score_split(model.to(device), dataset, task.name, answers=answers, batch_size=args.batch_size,
                          device=device, out_dir=out, name=name, retrieval_mode=args.retrieval_mode,
                          retrieval_k=args.retrieval_k, vcr_subtasks=task.vcr_subtask_names,
                          vcr_rationale_model=None if rationale_model is None else rationale_model.to(device))
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(f"{task.name} on {split}: {getattr(dataset, 'questions', len(dataset))} examples")
        for key, value in headline(task.name, metrics).items():
            print(f"  {key:<36} {value:.0f}" if key.endswith("_passes") else f"  {key:<36} {value:.2f}")
        if metrics is None and task.name != "retrieval":
            print("  (the split has no answers: submission file only)")
        print(f"wrote {out}/{name}_*")
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return guarded("vlengine evaluate", _evaluate, argv)
