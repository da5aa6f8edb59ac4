"""The `vlengine` command. Each subcommand lives with the layer it drives:

    vlengine info                      versions and backends (python -m vlengine.info)
    vlengine data convert --from ...   feature-format converters (vlengine.data.cli)
    vlengine data corpus ...           the embedded corpus (vlengine.data.cli)
    vlengine pretrain [--config FILE]  pretraining on DeepSpeed (vlengine.training.cli)
"""

from __future__ import annotations

import importlib
import sys

_SUBCOMMANDS = {
    "info": "vlengine.info",
    "data": "vlengine.data.cli",
    "pretrain": "vlengine.training.cli",
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
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in _SUBCOMMANDS:
        print(__doc__.strip())
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(_SUBCOMMANDS[argv[0]])
    return int(module.main(argv[1:]) or 0)


def run() -> None:
    """The console command: `main`, then the exit a process that ran a process group needs."""
    code = main()
    engine = sys.modules.get("vlengine.training.engine")  # imported only by commands that train
    if engine is not None:
        engine.exit_process(code)  # see its docstring: gloo threads vs interpreter finalisation
    sys.exit(code)


if __name__ == "__main__":
    run()
