"""The larger evaluation splits: large motion (where the global level is needed) and real stereo
crops with ground truth; the motion statistics that say so."""
import pytest
import torch

from gocor.lab.data.flow import motion_stats, warp
from gocor.lab.data.pairs import PairConfig, make_pair
from gocor.lab.data.real import motorcycle_batch, motorcycle_pair
from gocor.lab.data.splits import MORE_SPLITS, held_out_split


def _photometric_error(b, flow):
    w = warp(b["source"], flow)
    m = b["mask"][:, None].expand_as(w)
    return (w - b["target"]).abs()[m].mean().item()


class TestMotionStats:
    def test_constant_flow(self):
        flow = torch.zeros(2, 2, 4, 4)
        flow[0, 0] = 3.0                              # pair 0 moves 3 px right
        flow[1, 1] = 10.0                             # pair 1 moves 10 px down
        mask = torch.ones(2, 4, 4, dtype=torch.bool)
        mask[1, 0, 0] = False
        s = motion_stats(flow, mask, cell=8.0)
        assert s["beyond_cell"] == pytest.approx(15 / 31) and s["valid"] == pytest.approx(31 / 32)
        assert s["median"] == 3.0 and s["p99"] == pytest.approx(10.0)

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match="flow, mask"):
            motion_stats(torch.zeros(2, 4, 4), torch.ones(2, 4, 4), 8.0)
        with pytest.raises(ValueError, match="no valid pixel"):
            motion_stats(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool), 8.0)


class TestMotorcycle:
    def test_shapes_and_determinism(self):
        a, b = motorcycle_pair(5), motorcycle_pair(5)
        assert a["source"].shape == (3, 64, 64) and a["flow"].shape == (2, 64, 64) and a["mask"].dtype == torch.bool
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert (a["flow"][1] == 0).all() and (a["flow"][0][a["mask"]] < 0).all()     # u = -disparity

    def test_ground_truth_explains_the_pair(self):
        b = motorcycle_batch(range(24))
        assert 0.3 < b["mask"].float().mean() < 0.9
        # the true flow warps the right view onto the left one; no flow or the wrong sign do not
        assert _photometric_error(b, b["flow"]) < 0.4 * _photometric_error(b, torch.zeros_like(b["flow"]))
        assert _photometric_error(b, b["flow"]) < 0.4 * _photometric_error(b, -b["flow"])

    def test_bad_scale(self):
        with pytest.raises(ValueError, match="scale_range"):
            motorcycle_pair(0, scale_range=(4.0, 3.0))
        with pytest.raises(ValueError, match="scale_range"):
            motorcycle_pair(0, scale_range=(9.0, 9.0))


class TestLargeMotion:
    def test_target_is_the_warped_canvas(self):
        cfg = PairConfig(photometric=False, translation=0.3)
        pairs = [make_pair(s, cfg) for s in range(8)]
        b = {k: torch.stack([p[k] for p in pairs]) for k in pairs[0]}
        assert _photometric_error(b, b["flow"]) < 0.02          # exact up to bilinear resampling
        assert motion_stats(b["flow"], b["mask"], 8.0)["beyond_cell"] > 0.5

    def test_no_translation_draws_nothing_new(self):
        a, b = make_pair(3, PairConfig()), make_pair(3, PairConfig(translation=0.0))
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ("large_motion", "large_motion_val", "motorcycle"))
def test_more_splits_need_the_global_level(name):
    b = held_out_split(name, n=32)
    assert b["flow"].shape == (32, 2, 64, 64)
    assert motion_stats(b["flow"], b["mask"], 8.0)["beyond_cell"] > 0.5      # one 8 px global cell at 64 px


def test_unknown_split_names_the_choices():
    with pytest.raises(ValueError, match="motorcycle"):
        held_out_split("kitti")


class TestObjects:
    def test_twin_split_is_the_dynamic_one_without_objects(self):
        with_obj, without = held_out_split("dynamic", n=8), held_out_split("dynamic_without_objects", n=8)
        obj = with_obj["object"]
        assert obj.any(dim=(1, 2)).all() and "object" not in without
        keep = ~obj[:, None].expand_as(with_obj["target"])
        assert torch.equal(with_obj["target"][keep], without["target"][keep])
        assert torch.equal(with_obj["flow"][:, :, ~obj[0]][0], without["flow"][:, :, ~obj[0]][0])

    def test_static_pairs_have_no_object_key_and_mixed_ones_stack(self):
        assert "object" not in make_pair(0, PairConfig())
        pairs = [make_pair(s, PairConfig(dynamic=0.5)) for s in range(12)]
        has = [bool(p["object"].any()) for p in pairs]
        assert any(has) and not all(has)


def test_object_and_background_metrics_add_up():
    from gocor.lab.models.matcher import Matcher
    from gocor.lab.runs.evaluate import evaluate, object_effect
    torch.manual_seed(0)
    model = Matcher()
    pairs = held_out_split("dynamic", n=4)
    m = evaluate(model, pairs)
    n_obj = int((pairs["mask"] & pairs["object"]).sum())
    n_bg = int((pairs["mask"] & ~pairs["object"]).sum())
    total = (m["aepe_object"] * n_obj + m["aepe_background"] * n_bg) / (n_obj + n_bg)
    assert total == pytest.approx(m["aepe"], rel=1e-5)
    e = object_effect(model, n=4)
    assert e["object"] == pytest.approx(m["aepe_object"]) and 0 < e["background_pixels"] < n_bg + 1
