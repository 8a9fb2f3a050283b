"""Matplotlib figures used by the notebooks. One colormap for every volume."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from ..solver import SolverTrace

VOLUME_CMAP = "magma"


def save(fig, name: str) -> Path | None:
    """Save into $GOCOR_FIGURES (set by ``python -m gocor reproduce``); no-op otherwise."""
    folder = os.environ.get("GOCOR_FIGURES")
    if not folder:
        return None
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def image(t: Tensor) -> np.ndarray:
    """(3, H, W) or (H, W) tensor -> array for imshow."""
    t = t.detach().cpu().float()
    return t.permute(1, 2, 0).clamp(0, 1).numpy() if t.dim() == 3 else t.numpy()


def volume_slice(ax, scores: Tensor, title: str, truth: tuple[int, int] | None = None,
                 query_image: Tensor | None = None) -> None:
    """Scores of one reference position over the query grid (H', W'), with the argmax (x)
    and the true match (o)."""
    s = scores.detach().cpu().float()
    if query_image is not None:
        ax.imshow(image(query_image), extent=(-0.5, s.shape[1] - 0.5, s.shape[0] - 0.5, -0.5))
        im = ax.imshow(s.numpy(), cmap=VOLUME_CMAP, alpha=0.75)
    else:
        im = ax.imshow(s.numpy(), cmap=VOLUME_CMAP)
    y, x = divmod(int(s.argmax()), s.shape[1])
    ax.plot(x, y, "x", color="cyan", ms=10, mew=2, label="argmax")
    if truth is not None:
        ax.plot(truth[1], truth[0], "o", mfc="none", color="lime", ms=12, mew=2, label="true match")
    ax.set_title(title)
    ax.set_xlabel("query x (cells)")
    ax.set_ylabel("query y (cells)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=9, frameon=False)
    plt.colorbar(im, ax=ax, fraction=0.046)


def distance_functions(ax, labels, max_dist: float = 5.0, linestyle: str = "-", suffix: str = "") -> None:
    """Label y, weight v+ and mask m of a LearnedLabels module as functions of distance."""
    d = torch.linspace(0, max_dist, 200)
    with torch.no_grad():
        y, v, m = labels(d)
    for curve, name, color in ((y, "label y(δ)", "C0"), (v, "weight v⁺(δ)", "C1"), (m, "mask m(δ)", "C2")):
        ax.plot(d.numpy(), curve.numpy(), linestyle, color=color, label=name + suffix)
    ax.set_xlabel("distance δ (feature cells)")
    ax.set_ylabel("value")
    ax.legend(fontsize=9)


def seed_bars(ax, summary: dict[str, dict[str, tuple[float, float]]], key: str, runs: dict[str, list[float]]) -> None:
    """Mean over seeds as bars, the spread as error bars (±1 std) and every seed as a dot."""
    names = list(summary)
    means = [summary[n][key][0] for n in names]
    stds = [summary[n][key][1] for n in names]
    ax.bar(names, means, yerr=stds, capsize=6, color=[f"C{i}" for i in range(len(names))], alpha=0.7)
    for i, n in enumerate(names):
        ax.plot([i] * len(runs[n]), runs[n], "k.", ms=8)
    ax.set_ylabel(key)
    ax.set_title(f"{key}: mean ± std over seeds (dots: seeds)")


def convergence(ax, traces: dict[str, SolverTrace], key: str = "loss") -> None:
    """Objective per solver step for several runs (one line each, image 0); ``traces`` are the
    records ``module.filters(..., return_trace=True)`` returns."""
    for name, trace in traces.items():
        values = getattr(trace, key)[:, 0].tolist()
        ax.plot(range(len(values)), values, "o-", label=name)
    ax.set_xlabel("steepest-descent step")
    ax.set_ylabel(key)
    ax.set_yscale("log")
    ax.legend()


def mean_band(ax, x, runs: dict[str, list[list[float]]], ylabel: str, marker: str = "o") -> None:
    """One line per name: the mean over its seeds (each a list of values at ``x``) with a ±1 std
    band, and each seed as faint dots."""
    for i, (name, seeds) in enumerate(runs.items()):
        arr = np.asarray(seeds, dtype=float)
        mean, std = arr.mean(0), (arr.std(0, ddof=1) if len(arr) > 1 else np.zeros(arr.shape[1]))
        ax.plot(x, mean, marker=marker, ms=4, color=f"C{i}", label=f"{name} ({len(arr)} seeds)")
        ax.fill_between(x, mean - std, mean + std, color=f"C{i}", alpha=0.2)
        for s in arr:
            ax.plot(x, s, ".", color=f"C{i}", alpha=0.35, ms=3)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
