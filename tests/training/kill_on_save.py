"""Run the real `python -m vlengine.cli ...` command, except that it dies by SIGKILL halfway
through writing its Nth checkpoint (a crash in the middle of a save):

    python tests/training/kill_on_save.py N pretrain --config ... --set ...

Only torch.save is wrapped (the first file DeepSpeed writes into the Nth `.partial-<tag>`
folder gets half its bytes, then the process kills itself); everything else is the
production command, run as `python -m vlengine.cli` would run it.
"""

from __future__ import annotations

import io
import os
import runpy
import signal
import sys

import torch


def arm_kill_on_save(nth: int) -> None:
    real_save = torch.save
    folders: list[str] = []

    def dying_save(obj, f, *args, **kwargs):
        if isinstance(f, str) and ".partial-" in f:
            folder = os.path.dirname(f)
            if folder not in folders:
                folders.append(folder)
            if len(folders) >= nth:
                buffer = io.BytesIO()
                real_save(obj, buffer, *args, **kwargs)
                with open(f, "wb") as out:
                    out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                    out.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    torch.save = dying_save


if __name__ == "__main__":
    arm_kill_on_save(int(sys.argv[1]))
    sys.argv = ["vlengine.cli", *sys.argv[2:]]
    runpy.run_module("vlengine.cli", run_name="__main__", alter_sys=True)
