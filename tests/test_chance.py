"""Chance levels of the coarse metrics (exact, against Monte Carlo) and the copy-aware score."""
import pytest
import torch

from gocor.lab.data.splits import facade_batch
from gocor.lab.runs.metrics import coarse_chance, coarse_metrics, coarse_truth, true_vs_copies


@pytest.fixture(scope="module")
def facades():
    return facade_batch(range(12), "near_repetitive")


class TestCoarseChance:
    @pytest.mark.parametrize("cells", [8, 16])
    def test_equals_random_volumes_on_average(self, facades, cells):
        exact = coarse_chance(facades["flow"], facades["mask"], cells, facades["period"])
        gen = torch.Generator().manual_seed(0)
        runs = [coarse_metrics(torch.rand(12, cells * cells, cells, cells, generator=gen),
                               facades["flow"], facades["mask"], facades["period"]) for _ in range(40)]
        for key in ("coarse_acc", "coarse_acc1", "copy_rate"):
            mc = sum(r[key] for r in runs) / len(runs)
            assert exact[f"chance_{key}"] == pytest.approx(mc, abs=0.01 if cells == 8 else 0.004)
        assert exact["chance_coarse_acc"] == 1 / cells ** 2

    def test_without_period_no_copy_rate(self, facades):
        assert "chance_copy_rate" not in coarse_chance(facades["flow"], facades["mask"], 8)


class TestTrueVsCopies:
    def _volume_peaked_at(self, facades, shift_cells):
        """A volume whose every cell scores 1 at the true cell moved by ``shift_cells`` (x)."""
        g = 16
        pos, _ = coarse_truth(facades["flow"], facades["mask"], g)
        x = (pos[:, 0].round() + shift_cells).clamp(0, g - 1)
        idx = (pos[:, 1].round().clamp(0, g - 1) * g + x).long()
        vol = torch.zeros(12, g * g, g, g)
        vol.scatter_(1, idx[:, None], 1.0)
        return vol

    def test_true_peak_always_wins(self, facades):
        out = true_vs_copies(self._volume_peaked_at(facades, 0), facades["flow"], facades["mask"], facades["period"])
        assert out["true_beats_copies"] == 1.0 and 0 < out["chance_true_beats_copies"] < 0.5

    def test_random_volume_near_its_chance(self, facades):
        vol = torch.rand(12, 256, 16, 16, generator=torch.Generator().manual_seed(1))
        out = true_vs_copies(vol, facades["flow"], facades["mask"], facades["period"])
        assert out["true_beats_copies"] == pytest.approx(out["chance_true_beats_copies"], abs=0.03)

    def test_a_peak_on_a_copy_loses(self, facades):
        period = facades["period"].clone()
        period[:, 0] = 32.0                       # 4 cells of the 16x16 grid at 128 px: shift by 4 is a copy
        out = true_vs_copies(self._volume_peaked_at(facades, 4), facades["flow"], facades["mask"], period)
        assert out["true_beats_copies"] < 0.5
