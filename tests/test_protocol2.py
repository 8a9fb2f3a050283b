"""Protocol v2's data and records: held-out pictures and texture families, large-motion pools,
per-pair metrics, the controls without a global level or without solver steps."""
import hashlib
import json
import math
from dataclasses import asdict

import pytest
import torch

from gocor.lab.data import pairs as pairs_module
from gocor.lab.data.images import (LARGE_MOTION_TEST_IMAGES, TEST_TEXTURES, TEXTURES, TRAIN_IMAGES,
                                   TRAIN_TEXTURES, load_image)
from gocor.lab.data.pool import PoolConfig, make_pool
from gocor.lab.data.splits import held_out_split
from gocor.lab.models.matcher import Matcher
from gocor.lab.runs.metrics import flow_metrics, per_pair_metrics
from gocor.lab.runs.train import TrainConfig, matcher_config, recorded_config


@pytest.fixture
def drawn(monkeypatch):
    """Record the pictures and texture families the pair generator draws."""
    seen = {"images": set(), "textures": set()}
    image, texture = pairs_module.load_image, pairs_module.texture

    def load(name):
        seen["images"].add(name)
        return image(name)

    def tex(kind, size, gen):
        seen["textures"].add(kind)
        return texture(kind, size, gen)

    monkeypatch.setattr(pairs_module, "load_image", load)
    monkeypatch.setattr(pairs_module, "texture", tex)
    return seen


class TestHeldOut:
    def test_pictures_and_families_are_disjoint(self):
        assert not set(LARGE_MOTION_TEST_IMAGES) & set(TRAIN_IMAGES)
        assert not set(TEST_TEXTURES) & set(TRAIN_TEXTURES) and set(TEST_TEXTURES) | set(TRAIN_TEXTURES) == set(TEXTURES)
        for name in LARGE_MOTION_TEST_IMAGES:
            img = load_image(name)
            assert img.shape[0] == 3 and min(img.shape[1:]) == 256 and 0 <= img.min() and img.max() <= 1

    def test_large_motion_test_split_draws_only_held_out_sources(self, drawn):
        held_out_split("large_motion", n=48)
        assert drawn["textures"] and drawn["textures"] <= set(TEST_TEXTURES)
        assert len(drawn["images"]) > 3 and drawn["images"] <= set(LARGE_MOTION_TEST_IMAGES)

    def test_validation_split_draws_only_training_sources(self, drawn):
        held_out_split("large_motion_val", n=48)
        assert drawn["textures"] and drawn["textures"] <= set(TRAIN_TEXTURES)
        assert drawn["images"] and drawn["images"] <= set(TRAIN_IMAGES)

    def test_training_pool_holds_out_the_families(self, drawn):
        pool = make_pool(PoolConfig(size=40, batch_size=4, textures="train", translation=0.3))
        assert pool["source"].shape == (40, 3, 64, 64)
        assert drawn["textures"] and drawn["textures"] <= set(TRAIN_TEXTURES)
        assert drawn["images"] <= set(TRAIN_IMAGES)

    def test_unknown_texture_set(self):
        with pytest.raises(ValueError, match="textures"):
            PoolConfig(size=8, batch_size=2, textures="test")


class TestPoolKey:
    def test_defaults_keep_the_old_key(self):
        cfg = PoolConfig(size=96, batch_size=16, facade_share=0.25, dynamic=0.5)
        old = {k: v for k, v in asdict(cfg).items() if k not in ("translation", "textures")}
        assert cfg.key == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:12]

    def test_new_fields_change_it(self):
        a = PoolConfig(size=96, batch_size=16)
        assert len({a.key, PoolConfig(size=96, batch_size=16, translation=0.3).key,
                    PoolConfig(size=96, batch_size=16, textures="train").key}) == 3


class TestRecordedConfig:
    def test_old_records_read_with_the_new_fields_at_their_defaults(self):
        old = {k: v for k, v in asdict(TrainConfig(steps=7)).items() if k not in ("translation", "textures")}
        assert recorded_config(old) == asdict(TrainConfig(steps=7))
        assert recorded_config(asdict(TrainConfig(translation=0.3))) == asdict(TrainConfig(translation=0.3))


class TestPerPairMetrics:
    def test_each_pair_alone(self):
        gen = torch.Generator().manual_seed(0)
        pred, gt = torch.randn(3, 2, 8, 8, generator=gen) * 4, torch.randn(3, 2, 8, 8, generator=gen) * 4
        mask = torch.rand(3, 8, 8, generator=gen) > 0.3
        mask[2] = False
        out = per_pair_metrics(pred, gt, mask)
        for i in range(2):
            alone = flow_metrics(pred[i:i + 1], gt[i:i + 1], mask[i:i + 1])
            for k in ("aepe", "pck1", "pck3", "pck5", "f1"):
                assert out[k][i] == pytest.approx(alone[k], rel=1e-6)
        assert all(math.isnan(out[k][2]) for k in out)

    def test_coarse_accuracy_of_the_true_volume(self):
        g = 4
        gt = torch.zeros(2, 2, 32, 32)
        vol = torch.eye(g * g).view(1, g * g, g, g).expand(2, -1, -1, -1)       # argmax = own cell
        out = per_pair_metrics(gt, gt, torch.ones(2, 32, 32, dtype=torch.bool), vol)
        assert out["coarse_acc"] == [1.0, 1.0] and out["aepe"] == [0.0, 0.0]

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match="shapes differ"):
            per_pair_metrics(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5), torch.ones(1, 4, 4, dtype=torch.bool))


class TestControls:
    @pytest.mark.parametrize("name", ["no_global", "gocor_no_global"])
    def test_no_global_starts_from_zero_flow(self, name):
        torch.manual_seed(0)
        model = Matcher(matcher_config(name)).eval()
        assert (model.global_gocor is None) and ((model.local_gocor is not None) == (name == "gocor_no_global"))
        x = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            flows = model(x, x.flip(-1))
        assert torch.equal(flows[0], torch.zeros_like(flows[0])) and flows[-1].abs().sum() > 0

    def test_zero_step_gocor_uses_no_solver_step(self):
        cfg = matcher_config("gocor_0step")
        assert cfg.global_level.num_iter == 0 and cfg.local_level.num_iter == 0
        model = Matcher(cfg)
        out = model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
        assert [f.shape[-1] for f in out] == [8, 16, 32]


class TestPostContribution:
    def test_zero_readout_is_plain_correlation_and_a_readout_shows(self):
        from gocor.lab.runs.analysis import post_contribution
        torch.manual_seed(0)
        model = Matcher(matcher_config("corr_post")).eval()
        before = post_contribution(model, n=2)
        assert before["global_relative_change"] == 0.0 and before["global_readout_norm"] == 0.0
        with torch.no_grad():
            model.global_post.readout.fill_(0.5)
        after = post_contribution(model, n=2)
        assert after["global_relative_change"] > 0.1 and after["local0_relative_change"] == 0.0

    def test_refuses_a_matcher_without_post_processing(self):
        from gocor.lab.errors import UserError
        from gocor.lab.runs.analysis import post_contribution
        with pytest.raises(UserError, match="corr_post"):
            post_contribution(Matcher(matcher_config("corr")), n=1)


class TestContextOver:
    def test_uniform_weight_is_the_mean_and_the_block_restores_it(self):
        from gocor.lab.runs.analysis import context_over
        torch.manual_seed(0)
        model = Matcher(matcher_config("global")).eval()
        src, tgt = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            before = model.global_volume(src, tgt)
            with context_over(model, torch.ones(2, 1, 8, 8)):
                same = model.global_volume(src, tgt)
            one = torch.zeros(2, 1, 8, 8)
            one[:, :, 0, 0] = 1.0
            with context_over(model, one):
                moved = model.global_volume(src, tgt)
            after = model.global_volume(src, tgt)
        assert torch.allclose(same, before, atol=1e-5) and torch.equal(after, before)
        assert (moved - before).abs().max() > 1e-3

    def test_needs_a_context_initializer(self):
        from gocor.lab.errors import UserError
        from gocor.lab.runs.analysis import context_over
        with pytest.raises(UserError, match="context-aware"):
            with context_over(Matcher(matcher_config("init_zeros")), torch.ones(1, 1, 8, 8)):
                pass


def _protocol2_script():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "scripts" / "protocol2.py"
    spec = importlib.util.spec_from_file_location("protocol2_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestProtocol2Script:
    """scripts/protocol2.py's command line: splits and key=value changes, checked before a run starts."""

    def test_splits_and_changes(self):
        from gocor.lab.runs.protocol2 import RUN_SPLITS
        parse = _protocol2_script().parse
        _, splits, changes = parse(["out", "gocor", "1", "large_motion,motorcycle", "steps=20", "lr=0.5", "textures=train"])
        assert splits == ("large_motion", "motorcycle")
        assert changes == {"steps": 20, "lr": 0.5, "textures": "train"}
        _, splits, changes = parse(["out", "gocor", "1", "steps=20"])        # no SPLITS: all of them
        assert splits == RUN_SPLITS and changes == {"steps": 20}

    @pytest.mark.parametrize("argv, named", [
        (["out", "corr", "0", "nope=3"], "'nope=3'"),
        (["out", "corr", "0", "all", "seed=3"], "'seed=3'"),
        (["out", "corr", "0", "all", "steps=abc"], "steps takes a number"),
        (["out", "corr", "0", "steps"], "unknown split 'steps'"),       # a change without '=' is not a split
        (["out", "corr", "x"], "seed"),
    ])
    def test_bad_arguments_exit_2_naming_them(self, argv, named, capsys):
        with pytest.raises(SystemExit) as e:
            _protocol2_script().parse(argv)
        assert e.value.code == 2 and named in capsys.readouterr().err


def test_run_variant_refuses_an_unknown_split_before_training(tmp_path):
    from gocor.lab.errors import UserError
    from gocor.lab.runs.ablate import run_variant
    with pytest.raises(UserError, match="unknown split 'nope'"):
        run_variant("corr", 0, "tiny", tmp_path / "runs", progress=False, splits=("standard", "nope"))
    assert not (tmp_path / "runs").exists()
