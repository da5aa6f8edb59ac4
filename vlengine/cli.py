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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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
