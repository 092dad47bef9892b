"""The PNG: forwarding throughput, fast-path cost, new flows and real TCP, medians with the run-to-run range."""

from __future__ import annotations

from pathlib import Path

from lb.bench.results import Results


def draw(results: Results, paths: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # (case, title, scale, unit: only that case's rows in this unit, or all when None)
    panels = [("forwarding", "forwarding (Mpps at the reals)", 1e-6, None),
              ("fastpath", "fast path (ns/packet, BPF_PROG_RUN)", 1.0, None),
              ("newflows", "new flows, SYN bursts (thousands/s)", 1e-3, "flows/s"),
              ("tcp", "real TCP, wrk → nginx (thousands/s)", 1e-3, None)]
    fig, grid = plt.subplots(2, 2, figsize=(16, 10))
    for ax, (case, title, scale, unit) in zip(grid.flat, panels):
        rows = [r for r in results.rows
                if r.case == case and r.median is not None and (unit is None or r.unit == unit)]
        names = [r.name for r in rows]
        med = [r.median * scale for r in rows]  # type: ignore[operator]
        low = [m - min(r.samples) * scale for m, r in zip(med, rows)]
        high = [max(r.samples) * scale - m for m, r in zip(med, rows)]
        colors = ["tab:orange" if n.startswith("lbxdp") else "tab:gray" for n in names]
        ax.barh(names, med, xerr=[low, high], color=colors)
        ax.invert_yaxis()
        ax.set_title(title)
        ax.tick_params(axis="y", labelsize=8)
    m = results.machine
    fig.suptitle(f"lbxdp bench ({results.mode}): Linux {m.get('kernel')}, {m.get('cores')} cores — "
                 "medians of interleaved runs, bars show min–max")
    fig.tight_layout()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    plt.close(fig)
