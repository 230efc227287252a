"""The report's charts: matplotlib (Agg, no display) to PNG bytes, one look for all of them."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

WIDTH_IN, HEIGHT_IN, DPI = 7.0, 2.8, 120


def _fig() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def bars(labels: Sequence[str], values: Sequence[float], ylabel: str) -> bytes:
    """Horizontal-label bar chart of one series (rankings)."""
    fig, ax = _fig()
    ax.bar(range(len(values)), values, color="#1FA8C9")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    return _png(fig)


def stacked_bars(
    buckets: Sequence[datetime], series: Mapping[str, Sequence[float]], width_s: int, ylabel: str
) -> bytes:
    """Counts per time bucket, one stacked colour per series (e.g. incidents per rule)."""
    import matplotlib.dates as mdates

    fig, ax = _fig()
    bottom = [0.0] * len(buckets)
    for name, vals in series.items():
        ax.bar(buckets, vals, width=width_s / 86400 * 0.9, bottom=bottom, label=name, align="edge")
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax.tick_params(axis="x", labelsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


def lines(series: Mapping[str, tuple[Sequence[datetime], Sequence[float]]], ylabel: str) -> bytes:
    """One line per series over time."""
    import matplotlib.dates as mdates

    fig, ax = _fig()
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", markersize=3, label=name)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax.tick_params(axis="x", labelsize=8)
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=7, loc="best")
    return _png(fig)
