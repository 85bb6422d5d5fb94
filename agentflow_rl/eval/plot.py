"""PNG plots: accuracy per benchmark of one run, and the difference between two runs.

matplotlib (extra ``eval``) is imported here only, with the non-interactive Agg backend, so the
rest of the eval works without it; a missing matplotlib is reported, not fatal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentflow_core import UsageError
from agentflow_rl.eval.summary import RunSummary, by_name


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UsageError("plots need matplotlib: pip install 'agentflow[eval]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(summary: RunSummary, path: Path, *, title: str = "") -> Path:
    plt = _pyplot()
    names = [b.benchmark for b in summary.benchmarks]
    values = [100 * b.accuracy for b in summary.benchmarks]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 1.5), 3.6))
    bars = ax.bar(names, values, color="#4C72B0")
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 108)  # accuracy is a percentage; the margin keeps a 100 % label inside
    ax.set_title(title or "accuracy per benchmark")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_compare(a: RunSummary, b: RunSummary, path: Path, *, labels: tuple[str, str]) -> Path:
    """Grouped bars of both runs, with B - A written above each group."""
    plt = _pyplot()
    first, second = by_name(a), by_name(b)
    names = [n for n in first if n in second]
    if not names:
        raise UsageError("the two runs have no benchmark in common")
    xs = range(len(names))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 1.5), 3.8))
    ax.bar([x - 0.2 for x in xs], [100 * first[n].accuracy for n in names], width=0.4, label=labels[0])
    ax.bar([x + 0.2 for x in xs], [100 * second[n].accuracy for n in names], width=0.4, label=labels[1])
    for x, n in zip(xs, names, strict=True):
        top = 100 * max(first[n].accuracy, second[n].accuracy)
        ax.annotate(f"{100 * (second[n].accuracy - first[n].accuracy):+.1f}", (x, top + 1), ha="center", fontsize=8)
    ax.set_xticks(list(xs), names, rotation=30)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 112)  # room for the labels above 100 %
    ax.legend(fontsize=8)
    ax.set_title("B - A in points above each pair")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
