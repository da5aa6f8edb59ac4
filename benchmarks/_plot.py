"""A PNG per op benchmark: speed-up over the baseline and peak memory against size, one line per provider.

matplotlib is optional (the ``plot`` extra); the Agg backend renders without a display.
"""

from __future__ import annotations

import os


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'vlengine[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_speedup_memory(rows, path: str, *, baseline: str | None, title: str, mode: str | None = None) -> str:
    """Two panels against the rows' sizes (in the order they ran): speed-up over ``baseline`` (log scale;
    the baseline is the line at 1) and peak memory in MB. ``mode`` picks which measurement is drawn
    (default "both" where present, else the first mode)."""
    plt = _pyplot()
    modes = list(dict.fromkeys(r.mode for r in rows))
    mode = mode or ("both" if "both" in modes else modes[0])
    rows = [r for r in rows if r.mode == mode]
    sizes = list(dict.fromkeys(r.size or r.case for r in rows))
    providers = list(dict.fromkeys(r.provider for r in rows))
    fig, (ax_speed, ax_mem) = plt.subplots(1, 2, figsize=(11, 4.2))
    for provider in providers:
        speed_x, speed_y, mem_x, mem_y = [], [], [], []
        for i, size in enumerate(sizes):
            row = next((r for r in rows if (r.size or r.case) == size and r.provider == provider), None)
            base = next((r.median_ms for r in rows if (r.size or r.case) == size and r.provider == baseline), None)
            if row is None or not row.median_ms:
                continue
            if base:
                speed_x.append(i)
                speed_y.append(base / row.median_ms)
            if row.peak_mem_mb is not None:
                mem_x.append(i)
                mem_y.append(max(row.peak_mem_mb, 0.0))
        if speed_x:
            ax_speed.plot(speed_x, speed_y, marker="o", label=provider)
        if mem_x:
            ax_mem.plot(mem_x, mem_y, marker="o", label=provider)
    ax_speed.set_yscale("log")
    ax_speed.axhline(1.0, color="grey", linewidth=0.8)
    ax_speed.set_ylabel(f"speed-up over {baseline} (x)")
    ax_mem.set_ylabel("peak memory beyond inputs (MB)")
    for ax in (ax_speed, ax_mem):
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels(sizes, rotation=15, fontsize=8)
        ax.set_xlabel("size")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"{title} ({mode})")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
