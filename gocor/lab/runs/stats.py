"""Paired comparisons of two variants over seeds (and test pairs): the statistics behind every
"better / worse / not resolved" the kit prints.

A step from variant A to variant B is judged on the *paired* differences B − A of runs that share
a seed (same initialization and batch order), never on two means and their spreads: with 3 seeds,
"the means differ by more than the larger seed std" calls a difference about one time in five
when there is none (:func:`null_call_rate` measures it).

- :func:`t_interval` — a mean and its Student-t interval (seeds as the only source of noise);
- :func:`prediction_interval` — where one more seed's value would fall (a fresh run on a machine
  that rounds differently is checked against it);
- :func:`paired_difference` — B − A per common seed, then :func:`t_interval`;
- :func:`hierarchical_bootstrap` — seeds resampled, then test pairs (or the pictures they come
  from) within each seed: also counts the test set's sampling error, which the t-interval over
  seed means ignores;
- :meth:`Interval.verdict` — "better" / "worse" when the interval excludes 0, else "not resolved".

Only numpy (and scipy's t quantile): making a table imports no torch.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A mean difference with its two-sided confidence interval."""
    mean: float
    low: float
    high: float
    n: int                  # seeds behind it
    level: float = 0.95

    @property
    def resolved(self) -> bool:
        """True when the interval excludes 0."""
        return self.low > 0 or self.high < 0

    def verdict(self, lower_is_better: bool) -> str:
        """'better' / 'worse' for the second variant when the interval excludes 0, else
        'not resolved'. With one seed nothing is resolved."""
        if self.n < 2 or not self.resolved:
            return "not resolved"
        return "better" if (self.high < 0) == lower_is_better else "worse"

    def fmt(self, digits: int = 3, scale: float = 1.0) -> str:
        """``+0.048 [-0.165, +0.260]`` (values × ``scale``)."""
        m, lo, hi = (scale * x for x in (self.mean, self.low, self.high))
        if not math.isfinite(lo):
            return f"{m:+.{digits}f} [n={self.n}]"
        return f"{m:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"

    def __str__(self) -> str:
        return self.fmt()


def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of seeds' values."""
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def t_quantile(level: float, df: int) -> float:
    """The two-sided Student-t quantile: P(|T_df| ≤ q) = level."""
    from scipy.stats import t
    return float(t.ppf(0.5 + level / 2, df))


def t_interval(xs: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of ``xs`` ± t_{n−1} · s / √n. One value gives an infinite interval (never resolved)."""
    x = np.asarray(xs, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"xs: expected a non-empty list of numbers, got shape {x.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a probability in (0, 1), got {level}")
    m = float(x.mean())
    if x.size == 1:
        return Interval(m, -math.inf, math.inf, 1, level)
    half = t_quantile(level, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Interval(m, m - half, m + half, int(x.size), level)


def prediction_interval(xs: Sequence[float], level: float = 0.95) -> Interval:
    """Where one more value from the distribution of ``xs`` falls with probability ``level`` (a
    normal model): mean ± t_{n−1} · s · √(1 + 1/n). One value gives an infinite interval."""
    ci = t_interval(xs, level)
    half = (ci.high - ci.mean) * math.sqrt(ci.n + 1)       # s/√n · √(n+1) = s · √(1 + 1/n)
    return ci if ci.n < 2 else Interval(ci.mean, ci.mean - half, ci.mean + half, ci.n, level)


def paired_difference(before: Mapping[int, float], after: Mapping[int, float],
                      level: float = 0.95) -> Interval:
    """after − before over the seeds both have (``{seed: value}``), with its t-interval."""
    seeds = sorted(set(before) & set(after))
    if not seeds:
        raise ValueError(f"no common seed: before has {sorted(before)}, after has {sorted(after)}")
    return t_interval([after[s] - before[s] for s in seeds], level)


def hierarchical_bootstrap(before: np.ndarray, after: np.ndarray, clusters: Sequence[int] | None = None,
                           n_boot: int = 4000, level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of after − before with a two-level percentile bootstrap interval.

    ``before``, ``after``: (S, P) per-pair metrics of S seeds on the same P test pairs (paired by
    seed and pair). Each replicate resamples the S seeds with replacement, then, within each drawn
    seed, the test pairs — or, with ``clusters`` (P,) (e.g. the picture each pair was cut from),
    whole clusters — with replacement; the statistic is the mean difference.
    """
    a, b = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"before, after: expected two (seeds, pairs) arrays of one shape, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("before, after: non-finite per-pair metric")
    diff = b - a
    n_seeds, n_pairs = diff.shape
    groups = np.zeros(n_pairs, dtype=np.int64) if clusters is None else np.asarray(clusters)
    if groups.shape != (n_pairs,):
        raise ValueError(f"clusters: expected one label per pair ({n_pairs}), got shape {groups.shape}")
    if clusters is None:
        members = [np.array([p]) for p in range(n_pairs)]
    else:
        members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    # per seed and cluster: the sum of differences and the pair count, so a replicate is cheap
    sums = np.stack([diff[:, m].sum(axis=1) for m in members], axis=1)           # (S, G)
    counts = np.array([m.size for m in members], dtype=np.float64)                # (G,)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    n_groups = len(members)
    for i in range(n_boot):
        s = rng.integers(0, n_seeds, n_seeds)
        g = rng.integers(0, n_groups, (n_seeds, n_groups))
        stats[i] = sums[s[:, None], g].sum() / counts[g].sum()
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(diff.mean()), float(lo), float(hi), n_seeds, level)


def null_call_rate(rule, n_seeds: int = 3, trials: int = 4000, seed: int = 0) -> float:
    """How often ``rule(before, after) -> bool`` ("a difference") fires when both variants
    draw their seeds' values from one normal distribution: the rule's false-alarm rate."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((trials, 2, n_seeds))
    return float(np.mean([rule(list(t[0]), list(t[1])) for t in x]))
