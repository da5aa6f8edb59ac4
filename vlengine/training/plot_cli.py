"""`vlengine plot RUN_DIR [RUN_DIR ...] [--out DIR]`: redraw a run's curves, or several runs side by side."""

from __future__ import annotations

import os

from vlengine._cli_errors import OneLineParser

from .plots import PLOTS_DIR, plot_runs


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="vlengine plot", description=__doc__)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="a run's output folder (holds metrics.jsonl)")
    parser.add_argument("--out", help="folder for the PNGs (default: RUN_DIR/plots for one run, ./plots for several)")
    args = parser.parse_args(argv)
    out = args.out or (os.path.join(args.runs[0], PLOTS_DIR) if len(args.runs) == 1 else PLOTS_DIR)
    written = plot_runs(args.runs, out)
    print(f"{len(written)} plot(s) in {out}")
    return 0
