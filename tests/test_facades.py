"""Near-repetitive facades, the coarse metrics and the minimal volume experiment."""
import torch

from gocor.lab.data.splits import held_out_split
from gocor.lab.runs.metrics import coarse_metrics, coarse_truth
from gocor.lab.data.facades import FacadeConfig, make_facade_pair
from gocor.lab.data.flow import warp


def test_facade_pair_convention_and_period():
    cfg = FacadeConfig()
    for seed in range(4):
        p = make_facade_pair(seed, cfg)
        assert p["source"].shape == (3, cfg.size, cfg.size) and p["mask"].float().mean() > 0.4
        back = warp(p["source"][None], p["flow"][None])[0]
        err = (back - p["target"]).abs().amax(0)[p["mask"]]
        assert err.max() < 1e-4                                   # target = source warped by flow
        lo, hi = cfg.period
        assert ((p["period"] >= lo * cfg.size) & (p["period"] <= hi * cfg.size)).all()
        # the scene repeats: the source moved by one period is close to itself, by half a period not
        px = int(round(p["period"][0].item()))
        same = (p["source"][:, :, px:] - p["source"][:, :, :-px]).abs().mean()
        half = (p["source"][:, :, px // 2:] - p["source"][:, :, :-(px // 2)]).abs().mean()
        assert same < 0.5 * half


def test_split_is_fixed_and_bit_identical():
    a, b = held_out_split("near_repetitive", n=3), held_out_split("near_repetitive", n=3)
    assert all(torch.equal(a[k], b[k]) for k in a) and a["source"].shape[-1] == 128
    assert not torch.equal(a["source"][0], a["source"][1])


def _one_hot(pos, g):
    cell = pos.round().clamp(0, g - 1).long()
    return torch.nn.functional.one_hot(cell[:, 1] * g + cell[:, 0], g * g).permute(0, 3, 1, 2).float()


def test_coarse_metrics_on_hand_made_volumes():
    d = held_out_split("near_repetitive", n=6)
    g = 16
    pos, valid = coarse_truth(d["flow"], d["mask"], g)
    assert valid.any() and not valid.all()
    right = coarse_metrics(_one_hot(pos, g), d["flow"], d["mask"], d["period"])
    assert right["coarse_acc"] == 1 and right["coarse_acc1"] == 1 and right["copy_rate"] == 0
    per_cells = (d["period"] * g / 128).view(-1, 2, 1, 1)
    copy = pos + per_cells * torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)     # one period to the right
    copy_inside = copy.round()[:, 0] <= g - 1
    keep = d["mask"] & copy_inside.repeat_interleave(8, 1).repeat_interleave(8, 2)   # cells whose copy is inside
    m = coarse_metrics(_one_hot(copy, g), d["flow"], keep, d["period"])
    assert m["coarse_acc"] == 0 and m["coarse_acc1"] == 0 and m["copy_rate"] == 1
    assert m["valid_cells"] > 0.3 * right["valid_cells"]
    near_copy = copy + torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)          # one cell beside a copy: not a copy
    keep2 = d["mask"] & (near_copy.round()[:, 0] <= g - 1).repeat_interleave(8, 1).repeat_interleave(8, 2)
    assert coarse_metrics(_one_hot(near_copy, g), d["flow"], keep2, d["period"])["copy_rate"] < 0.02
    half = pos + 0.5 * per_cells                                           # half a period off: no copy
    assert coarse_metrics(_one_hot(half, g), d["flow"], d["mask"], d["period"])["copy_rate"] == 0
    assert "copy_rate" not in coarse_metrics(_one_hot(pos, g), d["flow"], d["mask"])
