"""Paired intervals and verdicts (gocor.lab.runs.stats): closed forms, coverage, the old rule's
false-alarm rate, and the shipped Table-6 runs."""
import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from gocor.lab.runs import report, stats


class TestTInterval:
    def test_closed_form(self):
        d = stats.t_interval([1.0, 2.0, 3.0])
        # mean 2, s = 1, t_{0.975, 2} = 4.302652729911275
        assert d.mean == 2.0 and d.n == 3
        assert math.isclose(d.high - 2.0, 4.302652729911275 / math.sqrt(3), rel_tol=1e-8)
        assert math.isclose(2.0 - d.low, d.high - 2.0, rel_tol=1e-12)

    def test_one_value_never_resolves(self):
        d = stats.t_interval([0.3])
        assert d.low == -math.inf and d.verdict(True) == "not resolved"

    @pytest.mark.parametrize("bad", [[], [[1.0, 2.0]]])
    def test_bad_input_names_the_argument(self, bad):
        with pytest.raises(ValueError, match="xs"):
            stats.t_interval(bad)

    def test_coverage_is_nominal(self):
        rng = np.random.default_rng(3)
        hits = [stats.t_interval(list(rng.normal(0.7, 2.0, 5))) for _ in range(2000)]
        cover = np.mean([d.low <= 0.7 <= d.high for d in hits])
        assert 0.93 <= cover <= 0.97


class TestPredictionInterval:
    def test_closed_form(self):
        d = stats.prediction_interval([1.0, 2.0, 3.0])
        # mean 2, s = 1: 2 ± t_{0.975, 2} · √(1 + 1/3)
        assert d.mean == 2.0 and d.n == 3
        assert math.isclose(d.high - 2.0, 4.302652729911275 * math.sqrt(4 / 3), rel_tol=1e-8)
        assert math.isclose(2.0 - d.low, d.high - 2.0, rel_tol=1e-12)

    def test_one_value_is_unbounded(self):
        d = stats.prediction_interval([0.3])
        assert d.low == -math.inf and d.high == math.inf

    def test_covers_one_more_draw(self):
        """Not the mean: a new value from the same distribution, ``level`` of the time."""
        rng = np.random.default_rng(4)
        hits = []
        for _ in range(2000):
            x = rng.normal(0.7, 2.0, 6)
            d = stats.prediction_interval(list(x[:5]))
            hits.append(d.low <= x[5] <= d.high)
        assert 0.93 <= np.mean(hits) <= 0.97


class TestVerdict:
    def test_directions(self):
        lower = stats.Interval(-0.2, -0.3, -0.1, 3)
        assert lower.verdict(lower_is_better=True) == "better"
        assert lower.verdict(lower_is_better=False) == "worse"
        assert stats.Interval(0.1, -0.1, 0.3, 3).verdict(True) == "not resolved"

    def test_the_old_rule_fires_four_times_too_often(self):
        # "means differ by more than the larger seed std", 3 seeds, no true difference
        old = lambda a, b: abs(statistics.mean(a) - statistics.mean(b)) > max(statistics.stdev(a), statistics.stdev(b))
        paired = lambda a, b: stats.t_interval([y - x for x, y in zip(a, b)]).resolved
        assert 0.18 < stats.null_call_rate(old) < 0.25
        assert 0.04 < stats.null_call_rate(paired) < 0.06


class TestPairedDifference:
    def test_pairs_by_seed_and_keeps_common_seeds(self):
        d = stats.paired_difference({0: 1.0, 1: 2.0, 2: 5.0}, {1: 2.5, 2: 5.5, 3: 9.0})
        assert d.n == 2 and d.mean == 0.5 and d.low == d.high == 0.5   # no spread: a point

    def test_no_common_seed(self):
        with pytest.raises(ValueError, match="no common seed"):
            stats.paired_difference({0: 1.0}, {1: 1.0})


class TestHierarchicalBootstrap:
    def test_mean_and_width(self):
        rng = np.random.default_rng(0)
        a = rng.normal(3.0, 0.5, (5, 200))
        b = a - 0.1 + rng.normal(0, 0.05, (5, 200))
        d = stats.hierarchical_bootstrap(a, b, n_boot=500)
        assert math.isclose(d.mean, float((b - a).mean()))
        assert d.low < d.mean < d.high and d.verdict(True) == "better"

    def test_seed_noise_widens_it(self):
        rng = np.random.default_rng(1)
        a = rng.normal(3.0, 0.1, (4, 100))
        shift = np.array([[-0.3], [0.25], [-0.2], [0.3]])       # a per-seed effect that averages ~0
        d = stats.hierarchical_bootstrap(a, a + shift + rng.normal(0, 0.01, a.shape), n_boot=500)
        assert d.verdict(True) == "not resolved"

    def test_clusters_and_shapes(self):
        a = np.zeros((2, 6))
        with pytest.raises(ValueError, match="clusters"):
            stats.hierarchical_bootstrap(a, a + 1, clusters=[0, 1])
        with pytest.raises(ValueError, match="shape"):
            stats.hierarchical_bootstrap(a, np.zeros((2, 5)))
        d = stats.hierarchical_bootstrap(a, a + 1, clusters=[0, 0, 1, 1, 2, 2], n_boot=50)
        assert d.mean == d.low == d.high == 1.0


def test_shipped_table6_steps():
    """The shipped 3-seed runs, paired by seed (the figures the README prints)."""
    runs = report.load_runs(Path(__file__).resolve().parents[1] / "data" / "results" / "ablation")
    _, steps = report.table6(runs, "standard")
    lr, lq, local = steps
    assert [s["aepe"] for s in steps] == ["not resolved", "better", "better"]
    assert math.isclose(lr["aepe_diff"], statistics.mean(
        [report.seed_values(runs, "global_lr", "standard", "aepe")[s] - report.seed_values(runs, "corr", "standard", "aepe")[s]
         for s in range(3)]), rel_tol=1e-12)
    assert lr["aepe_ci"][0] < 0 < lr["aepe_ci"][1] and lq["aepe_ci"][1] < 0 and local["aepe_ci"][1] < 0
