"""How the `vlengine` commands report a user's mistake: one line on stderr, no traceback.

A `vlengine._config.UserError` (a misspelt key, a missing file, a wrong flag) becomes
"vlengine pretrain: error: <what is wrong and what to do>" and exit code 2. `--debug`
or VLENGINE_DEBUG=1 shows the full traceback instead. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from ._config import UserError

EXIT_USER_ERROR = 2


def debug_enabled() -> bool:
    return os.environ.get("VLENGINE_DEBUG", "") not in ("", "0")


def enable_debug() -> None:
    os.environ["VLENGINE_DEBUG"] = "1"


def take_debug_flag(argv: list[str]) -> list[str]:
    """Remove `--debug` (anywhere among the arguments) and turn debugging on."""
    if "--debug" in argv:
        enable_debug()
        argv = [a for a in argv if a != "--debug"]
    return argv


def guarded(prog: str, command, *args) -> int:
    """Run `command(*args)`; a UserError becomes one line and exit code 2 (unless debugging)."""
    try:
        return int(command(*args) or 0)
    except UserError as err:
        if debug_enabled():
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a wrong flag is one line that points at --help (not the usage block plus a line)."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
