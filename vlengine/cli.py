"""usage: vlengine [--version] [--debug] COMMAND [ARGS]

commands:
  info                                    versions, compiled backends and the ops each can run
  data corpus OUT_DIR                     build the embedded, visually grounded corpus
  data convert --from FORMAT SRC --out STORE   convert region features (tsv, vlbert-zip, lmdb, npz, images)
  data verify STORE                       check every file of a store (sizes and sha256)
  data info STORE                         a store's record counts, columns and attributes
  pretrain [--config FILE] [--set K=V]    pretraining on DeepSpeed (default: the shipped main job)
  pretrain export CHECKPOINTS OUT         the fp32 weights of a checkpoint as one safetensors file
  finetune [--task T] [--init CKPT] [--config FILE]   fine-tuning: vqa, gqa, nlvr2, retrieval (default: the
                                          embedded corpus's questions beside a question-only baseline)
  evaluate --checkpoint CKPT [--split SET] a fine-tuned model's official metric and submission file
  convert-checkpoint --from X SRC OUT     a published VL-BERT, UNITER or LXMERT checkpoint as an export
  plot RUN_DIR [RUN_DIR ...]              PNG curves of a run's losses and metrics (several runs side by side)

options:
  --version    print the version and exit
  --debug      show full tracebacks instead of one-line errors (also: VLENGINE_DEBUG=1)
  -h, --help   this help; `vlengine COMMAND --help` shows a command's options
"""

from __future__ import annotations

import importlib
import sys

from ._cli_errors import EXIT_USER_ERROR, guarded, take_debug_flag
from ._config import closest

_SUBCOMMANDS = {
    "info": "vlengine.info",
    "data": "vlengine.data.cli",
    "pretrain": "vlengine.training.cli",
    "finetune": "vlengine.training.finetune_cli",
    "evaluate": "vlengine.training.evaluate_cli",
    "plot": "vlengine.training.plot_cli",
    "convert-checkpoint": "vlengine.models.published.cli",
}


def _launcher_args_after_subcommand(argv: list[str]) -> list[str]:
    """`deepspeed --module vlengine.cli pretrain ...` runs `vlengine.cli --local_rank=N pretrain ...`:
    move the launcher's --local_rank behind the subcommand, which accepts it."""
    leading = []
    while argv and argv[0].startswith("--local_rank"):
        take = 1 if "=" in argv[0] else 2
        leading, argv = leading + argv[:take], argv[take:]
    return argv[:1] + leading + argv[1:] if leading and argv else argv


def main(argv: list[str] | None = None) -> int:
    argv = _launcher_args_after_subcommand(list(sys.argv[1:] if argv is None else argv))
    argv = take_debug_flag(argv)
    if argv and argv[0] in ("--version", "-V"):
        from . import __version__
        print(f"vlengine {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    command = argv[0]
    if command not in _SUBCOMMANDS:
        guess = closest(command, _SUBCOMMANDS)
        hint = f"did you mean {guess!r}?" if guess else f"commands: {', '.join(_SUBCOMMANDS)}"
        what = "option" if command.startswith("-") else "command"
        print(f"vlengine: unknown {what} {command!r}, {hint} (vlengine --help lists them)", file=sys.stderr)
        return EXIT_USER_ERROR
    module = importlib.import_module(_SUBCOMMANDS[command])
    return guarded(f"vlengine {command}", module.main, argv[1:])


def run() -> None:
    """The console command: `main`, then the exit a process that ran a process group needs."""
    code = main()
    engine = sys.modules.get("vlengine.training.engine")  # imported only by commands that train
    if engine is not None:
        engine.exit_process(code)  # see its docstring: gloo threads vs interpreter finalisation
    sys.exit(code)


if __name__ == "__main__":
    run()
