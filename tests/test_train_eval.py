"""Training (resume == uninterrupted, reruns bit-identical), checkpoints, metrics, evaluation."""
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from gocor.lab.runs.checkpoint import CheckpointError, save
from gocor.lab.runs.evaluate import evaluate, evaluate_checkpoint, load_matcher, load_pairs
from gocor.lab.runs.metrics import flow_metrics
from gocor.lab.models.matcher import Matcher
from gocor.lab.runs.train import PROFILES, matcher_config, train
from gocor.lab.runs.variants import VARIANTS

TINY = PROFILES["tiny"]


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(replace(TINY, variant="gocor"), out, device="cpu", progress=False)
    return out / "last.pt"


def test_resume_equals_uninterrupted(tmp_path, tiny_run):
    cfg = replace(TINY, variant="gocor")
    train(cfg, tmp_path, device="cpu", progress=False, stop_after=3)       # killed after step 3
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 2  # last checkpoint: step 2
    train(cfg, tmp_path, resume=True, device="cpu", progress=False)
    a, b = _weights(tiny_run), _weights(tmp_path / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rerun_bit_identical_and_training_moves_weights(tmp_path, tiny_run):
    train(replace(TINY, variant="gocor"), tmp_path, device="cpu", progress=False)
    a, b = _weights(tiny_run), _weights(tmp_path / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(TINY.seed)
    init = Matcher(matcher_config("gocor")).state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in a)


def test_resume_refuses_another_config(tmp_path):
    train(TINY, tmp_path, device="cpu", progress=False, stop_after=2)
    with pytest.raises(CheckpointError, match="another training config"):
        train(replace(TINY, lr=0.5), tmp_path, resume=True, device="cpu", progress=False)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_models_are_small_and_same_backbone(name):
    model = Matcher(matcher_config(name))
    assert 350_000 < sum(p.numel() for p in model.parameters()) < 370_000     # 3.62e5 (corr) .. 3.65e5
    flows = model(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    assert [f.shape[-1] for f in flows] == [8, 16, 32]
    # the backbone and decoders are shared; only the correlation modules (GOCor, the control's
    # post-processing) differ
    shared = lambda m: {k for k in m.state_dict() if "gocor" not in k and "_post" not in k}
    assert shared(Matcher(matcher_config("corr"))) == shared(model)


def test_metrics_on_hand_made_cases():
    gt = torch.zeros(1, 2, 4, 4)
    gt[:, 0] = 10.0
    mask = torch.ones(1, 4, 4, dtype=torch.bool)
    exact = flow_metrics(gt.clone(), gt, mask)
    assert exact["aepe"] == 0 and exact["pck1"] == 1 and exact["f1"] == 0
    off = gt.clone()
    off[:, 0] += 3.0
    off[:, 1] += 4.0                                      # EPE exactly 5 everywhere
    m = flow_metrics(off, gt, mask)
    assert m["aepe"] == pytest.approx(5) and m["pck5"] == 0 and m["pck3"] == 0 and m["f1"] == 1
    half = gt.clone()
    half[..., :2] += torch.tensor([0.5, 0.0]).view(1, 2, 1, 1)   # EPE 0.5 on the left half
    mask[0, :, 3] = False                                  # a masked-out column with EPE 0
    m = flow_metrics(half, gt, mask)
    assert m["aepe"] == pytest.approx(0.5 * 8 / 12) and m["pck1"] == 1 and m["valid_pixels"] == 12
    gt_big = gt * 10                                       # |gt| = 100
    big = gt_big.clone()
    big[:, 0] += 4.0                                       # EPE 4 > 3 px but < 5% of |gt|
    assert flow_metrics(big, gt_big, torch.ones(1, 4, 4, dtype=torch.bool))["f1"] == 0


def test_checkpoint_errors_name_the_file(tmp_path, tiny_run):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_matcher(tmp_path / "missing.pt")
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(tiny_run.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="trunc.pt: not a readable"):
        load_matcher(trunc)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt: not a GOCor-kit checkpoint"):
        load_matcher(foreign)
    bad = tmp_path / "bad.pt"
    save({"model": {}, "matcher_config": matcher_config("corr").to_dict()}, bad)
    with pytest.raises(CheckpointError, match="bad.pt: checkpoint does not fit"):
        load_matcher(bad)
    cli = subprocess.run([sys.executable, "-m", "gocor", "evaluate", "--checkpoint", str(trunc)],
                         capture_output=True, text=True)
    assert cli.returncode == 2 and "trunc.pt" in cli.stderr and "Traceback" not in cli.stderr


def test_evaluate_on_a_pairs_file(tmp_path, tiny_run):
    from gocor.lab.data.splits import held_out_split
    d = held_out_split("standard", n=3)
    to_u8 = lambda t: (t.permute(0, 2, 3, 1) * 255).round().byte().numpy()
    up = torch.nn.functional.interpolate
    src96 = up(d["source"], size=(96, 96), mode="bilinear", align_corners=False)
    tgt96 = up(d["target"], size=(96, 96), mode="bilinear", align_corners=False)
    flow96 = up(d["flow"], size=(96, 96), mode="bilinear", align_corners=False) * 1.5
    mask96 = up(d["mask"][:, None].float(), size=(96, 96), mode="nearest")[:, 0] > 0.5
    path = tmp_path / "pairs.npz"
    np.savez(path, source=to_u8(src96), target=to_u8(tgt96),
             flow=flow96.permute(0, 2, 3, 1).numpy().astype(np.float32), mask=mask96.numpy())
    pairs = load_pairs(path, 64)
    assert pairs["source"].shape == (3, 3, 64, 64)
    assert torch.allclose(pairs["flow"], d["flow"], atol=0.3)     # resized back, flow rescaled by 64/96
    cli = subprocess.run([sys.executable, "-m", "gocor", "evaluate", "--checkpoint", str(tiny_run),
                          "--pairs", str(path)], capture_output=True, text=True, check=True)
    result = json.loads(cli.stdout)
    assert {"aepe", "pck1", "pck3", "pck5", "f1"} <= set(result) and result["aepe"] > 0
    np.savez(tmp_path / "broken.npz", source=to_u8(src96))
    with pytest.raises(ValueError, match="broken.npz: missing array"):
        load_pairs(tmp_path / "broken.npz", 64)


def _pairs_file(tmp_path, name, **changes):
    n, s = 2, 16
    arrays = {"source": np.full((n, s, s, 3), 128, np.uint8), "target": np.full((n, s, s, 3), 128, np.uint8),
              "flow": np.zeros((n, s, s, 2), np.float32), "mask": np.ones((n, s, s), bool)} | changes
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


def _cli_error(capsys, checkpoint, pairs):
    """``gocor evaluate`` in this process: exit status 2, the message on stderr, nothing on stdout;
    any other exception (a traceback) escapes and fails the test. The same command as a
    subprocess (``python -m gocor``, its exit status and stderr): test_checkpoint_errors_name_the_file."""
    from gocor.tools.cli import main
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--checkpoint", str(checkpoint), "--pairs", str(pairs)])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "" and "Traceback" not in err, err
    return err


def test_bad_pairs_files_get_clear_errors(tmp_path, tiny_run, capsys):
    flow = np.zeros((2, 16, 16, 2), np.float32)
    flow[0, 3, 4, 0] = np.nan
    nan_file = _pairs_file(tmp_path, "nanflow.npz", flow=flow)
    with pytest.raises(ValueError, match=r"nanflow.npz: flow is not finite .* at 1 valid pixels"):
        load_pairs(nan_file, 64)
    err = _cli_error(capsys, tiny_run, nan_file)
    assert "nanflow.npz" in err and "flow" in err and "NaN" in err
    masked = np.ones((2, 16, 16), bool)
    masked[0, 3, 4] = False                               # NaN where the mask is off is fine
    ok = load_pairs(_pairs_file(tmp_path, "nan_masked.npz", flow=flow, mask=masked), 64)
    assert torch.isfinite(ok["flow"]).all()

    floats = _pairs_file(tmp_path, "float_images.npz", source=np.full((2, 16, 16, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match="float_images.npz: source has dtype float32, expected uint8"):
        load_pairs(floats, 64)
    assert "uint8" in _cli_error(capsys, tiny_run, floats)

    text = tmp_path / "notes.npz"
    text.write_text("these are my notes, not arrays\n")
    with pytest.raises(ValueError, match="notes.npz: not an .npz archive"):
        load_pairs(text, 64)
    err = _cli_error(capsys, tiny_run, text)
    assert "not an .npz archive" in err and "allow_pickle" not in err

    empty = _pairs_file(tmp_path, "empty_mask.npz", mask=np.zeros((2, 16, 16), bool))
    with pytest.raises(ValueError, match="empty_mask.npz: no valid pixel in mask"):
        load_pairs(empty, 64)
    assert "empty_mask.npz: no valid pixel" in _cli_error(capsys, tiny_run, empty)


@pytest.mark.parametrize("size", [96, 128])
def test_matcher_trains_and_evaluates_at_other_sizes(tmp_path, size):
    """The global level's grid is derived from the training size (size // 8 cells a side)."""
    from gocor.lab.data.pairs import PairConfig
    from gocor.lab.data.splits import make_batch
    cfg = replace(TINY, variant="gocor", image_size=size, steps=2, val_every=2, ckpt_every=2)
    train(cfg, tmp_path, device="cpu", progress=False)
    model, _ = load_matcher(tmp_path / "last.pt", "cpu")
    assert model.config.global_cells == size // 8
    assert model.global_volume(torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)).shape == \
        (1, (size // 8) ** 2, size // 8, size // 8)
    pairs = make_batch(range(3), "standard", PairConfig(size=size, photometric=False))
    result = evaluate(model, pairs)
    assert np.isfinite(result["aepe"]) and result["valid_pixels"] > 0
    # another input size (a multiple of 8) goes through the global grid of the training size
    assert model.predict(torch.rand(1, 3, 48, 80), torch.rand(1, 3, 48, 80)).shape == (1, 2, 48, 80)
    with pytest.raises(ValueError, match="multiples of 8"):
        model.predict(torch.rand(1, 3, 50, 64), torch.rand(1, 3, 50, 64))


def test_evaluate_split_matches_function(tiny_run):
    """evaluate_checkpoint on a split is evaluate() of the loaded matcher on that split, key by key."""
    from gocor.lab.data.pairs import PairConfig
    from gocor.lab.data.splits import held_out_split
    a = evaluate_checkpoint(tiny_run, "repetitive", device="cpu")
    model, _ = load_matcher(tiny_run, "cpu")
    b = evaluate(model, held_out_split("repetitive", PairConfig(size=model.config.image_size, photometric=False)))
    assert set(b) < set(a) and all(a[k] == b[k] for k in b)
    assert a["data"] == "repetitive" and a["model"] == model.config.to_dict()


def test_objective_parameters_get_their_own_learning_rate(tmp_path):
    """GOCor's O(1) objective parameters learn at objective_lr_scale × lr, without weight decay."""
    from gocor.lab.models.parameters import objective_parameters, param_groups
    model = Matcher(matcher_config("gocor"))
    fast = objective_parameters(model)
    assert len(fast) == 7 + 2 * 5                  # global: labels (3), λ, step, prior (2); two locals
    groups = param_groups(model, fast, 1e-3, 10.0)
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == len(list(model.parameters()))
    assert groups[1]["lr"] == 1e-2 and groups[1]["weight_decay"] == 0.0

    def label_drift(scale):
        out = tmp_path / f"scale{scale}"
        train(replace(TINY, variant="gocor", objective_lr_scale=scale), out, device="cpu", progress=False)
        w = _weights(out / "last.pt")
        init = Matcher(matcher_config("gocor")).state_dict()       # the label bins' init is not random
        return max((w[k] - init[k]).abs().max().item() for k in w if k.endswith("labels.label"))

    assert label_drift(10.0) > 3 * label_drift(1.0)


def test_training_batches_come_from_the_pool_with_their_facade_share():
    from gocor.lab.data.pool import load_pool
    from gocor.lab.runs.train import training_batch
    cfg = replace(TINY, batch_size=4, facade_share=0.5, pool_size=12)
    pool = load_pool(cfg.pool)
    a, b = training_batch(cfg, 3, pool), training_batch(cfg, 3)
    assert all(torch.equal(a[k], b[k]) for k in a) and a["source"].shape == (4, 3, 64, 64)
    n_mixed = cfg.pool_size - cfg.pool.n_facades
    src = (pool["source"].float() / 255).flatten(1)
    rows = [int((src == x.flatten()).all(1).nonzero()[0]) for x in a["source"]]
    assert all(r < n_mixed for r in rows[:2]) and all(r >= n_mixed for r in rows[2:])
