"""`exit_process`: a command that ran a process group leaves with its exit code, its exit hooks run and its
output flushed, but without interpreter finalisation (where gloo's worker threads can abort the process)."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(body: str, tmp_path) -> subprocess.CompletedProcess:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(body))
    env = dict(os.environ, DS_ACCELERATOR="cpu", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run([sys.executable, str(script)], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=180)


def test_after_a_process_group_hooks_run_output_is_flushed_and_the_code_is_kept(tmp_path):
    proc = _run("""
        import atexit, sys
        import torch, torch.distributed as dist
        from vlengine.training.engine import exit_process, init_distributed, shutdown_distributed
        atexit.register(lambda: open("hook_ran", "w").close())
        rank, world = init_distributed()
        t = torch.ones(4)
        dist.all_reduce(t)      # a collective whose tensor Python then drops
        del t
        shutdown_distributed()
        sys.stdout.write("unflushed line without a newline")
        exit_process(3)
        open("after_exit", "w").close()
    """, tmp_path)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert proc.stdout.endswith("unflushed line without a newline")
    assert (tmp_path / "hook_ran").exists()
    assert not (tmp_path / "after_exit").exists()


def test_without_a_process_group_it_is_a_normal_exit(tmp_path):
    proc = _run("""
        from vlengine.training.engine import exit_process
        try:
            exit_process(5)
        except SystemExit as exc:
            print("SystemExit", exc.code)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "SystemExit 5"
