"""Figures for the experiments: matplotlib with the Agg backend (no display), small PNGs.

Pure drawing: each function takes numbers and a path, writes one PNG and returns the path. Every
figure has a title, axis labels with units and a legend, so it can go into a paper as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend must be chosen first

DPI = 80


@dataclass(frozen=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    style: str = "-o"


@dataclass(frozen=True)
class LinePanel:
    title: str
    xlabel: str
    ylabel: str
    series: Sequence[Series]
    log_x: bool = False
    log_y: bool = False
    xticks: Sequence[str] | None = None  # category labels for x = 0, 1, …
    ylim: tuple[float, float] | None = None  # fixed y range (e.g. 0…1 for a fraction)


@dataclass(frozen=True)
class BarPanel:
    title: str
    ylabel: str
    groups: Mapping[str, Sequence[float]]  # legend label → one value per category
    reference: float | None = 1.0


def timeseries_grid(
    path: Path,
    title: str,
    runs: Sequence[tuple[str, Sequence[float], Sequence[Sequence[int]], Sequence[int]]],
) -> Path:
    """One small panel per scheduler: active connections of each real over time (s)."""
    cols = min(3, len(runs))
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, (label, times, active, weights) in zip(axes.flat, runs, strict=False):
        for i in range(len(weights)):
            ax.plot(times, [row[i] for row in active], linewidth=0.8, label=f"real {i + 1} (w={weights[i]})")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(runs):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("active connections")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(8, len(labels)), fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, path)


def grouped_bars(
    path: Path, title: str, categories: Sequence[str], panels: Sequence[BarPanel], log_y: bool = False
) -> Path:
    """Side-by-side panels of grouped bars, one group per category (scheduler)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.0), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=True):
        width = 0.8 / max(1, len(panel.groups))
        for g, (label, values) in enumerate(panel.groups.items()):
            xs = [c + (g - (len(panel.groups) - 1) / 2) * width for c in range(len(categories))]
            ax.bar(xs, values, width=width, label=label)
        if panel.reference is not None:
            ax.axhline(panel.reference, color="black", linewidth=0.8, linestyle="--", label="perfect balance")
        ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        ax.set_title(panel.title, fontsize=10)
        ax.set_ylabel(panel.ylabel)
        ax.set_xlabel("scheduler")
        if log_y:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def line_panels(path: Path, title: str, panels: Sequence[LinePanel]) -> Path:
    """Side-by-side line plots."""
    fig, axes = plt.subplots(1, len(panels), figsize=(max(8.0, 6.0 * len(panels)), 4.2), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=True):
        for s in panel.series:
            ax.plot(s.xs, s.ys, s.style, label=s.label, markersize=4, linewidth=1.2)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        if panel.log_x:
            ax.set_xscale("log")
        if panel.log_y:
            ax.set_yscale("log")
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
        if panel.xticks is not None:
            ax.set_xticks(range(len(panel.xticks)), panel.xticks, rotation=20, ha="right")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
