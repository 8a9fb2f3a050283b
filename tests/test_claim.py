"""The claim experiment's pieces: dosed facades, frozen extractors, one short run per layer."""
import math

import pytest
import torch

from gocor.lab.data.facades import CUES, FacadeConfig, make_facade_pair
from gocor.lab.runs import claim


class TestDose:
    def test_default_cues_unchanged_and_zero_dose_makes_copies_identical(self):
        cfg = FacadeConfig()
        assert cfg.scaled(1.0).brightness == cfg.brightness and cfg.scaled(1.0).distinct == 0
        zero = cfg.scaled(0.0)
        assert zero.brightness == zero.tint == zero.shading == 0.0 and zero.curtain == 0.0
        # no noise, a 32 px lattice: at dose 0 the scene is exactly periodic (copies identical); at 1 not
        plain = FacadeConfig(noise=0.0, homography=0.0, shift=0.0, period=(0.25, 0.25))
        same = make_facade_pair(0, plain.scaled(0.0))["source"]
        assert torch.allclose(same[:, :, 32:], same[:, :, :-32], atol=1e-5)
        differs = make_facade_pair(0, plain.scaled(1.0))["source"]
        assert (differs[:, :, 32:] - differs[:, :, :-32]).abs().amax() > 0.05

    def test_bad_dose_and_cue(self):
        with pytest.raises(ValueError, match="dose"):
            FacadeConfig().scaled(-1.0)
        with pytest.raises(ValueError, match="cues"):
            FacadeConfig().scaled(1.0, ("colour",))
        assert set(CUES) == {"brightness", "tint", "curtain", "shading"}

    def test_one_cue_alone(self):
        only = FacadeConfig().scaled(2.0, ("tint",))
        assert only.tint == pytest.approx(0.12) and only.brightness == only.curtain == only.shading == 0.0


class TestExtractors:
    @pytest.mark.parametrize("name", claim.EXTRACTORS)
    def test_shapes_and_norms(self, name):
        f = claim.features(name, torch.rand(2, 3, 128, 128))
        assert f.shape[0] == 2 and f.shape[-2:] == (16, 16)
        assert torch.allclose(f.norm(dim=1), torch.ones(2, 16, 16), atol=1e-4)


def test_runs_of_each_layer(monkeypatch):
    cfg = claim.ClaimConfig(extractor="random", steps=3, train_pairs=8, test_pairs=8, dose=1.0)
    out = {layer: claim.run(claim.ClaimConfig(**{**cfg.__dict__, "layer": layer})) for layer in claim.LAYERS}
    assert out["corr"]["history"] == [] and len(out["gocor"]["history"]) == 3
    for r in out.values():
        m = r["metrics"]
        assert 0 <= m["coarse_acc"] <= 1 and m["chance_coarse_acc"] == 1 / 256
        assert len(r["per_pair"]["coarse_acc"]) == 8
        vals = [v for v in r["per_pair"]["coarse_acc"] if not math.isnan(v)]
        assert vals and all(0 <= v <= 1 for v in vals)
    with pytest.raises(ValueError, match="extractor"):
        claim.ClaimConfig(extractor="vgg")


def test_plan_pairs_every_gocor_seed_with_one_baseline():
    cfgs = claim.plan(seeds=2)
    gocor = [c for c in cfgs if c.layer == "gocor"]
    assert len(gocor) == 2 * (len(claim.EXTRACTORS) * len(claim.DOSES) + 2)
    assert sum(c.layer == "corr" for c in cfgs) == len(claim.EXTRACTORS) * len(claim.DOSES) + 2


def test_summary_of_the_shipped_runs():
    import json
    from pathlib import Path
    results = json.loads((Path(__file__).resolve().parents[1] / "data/results/claim/results.json").read_text())
    table = claim.summarize(results)
    groups = len(claim.EXTRACTORS) * len(claim.DOSES) + 2
    assert table.count("\n| ") == 2 * groups
    assert len(results["runs"]) == len(claim.plan(seeds=5))
