"""The ablation runner: variants, cached and resumable runs, results and table."""
import json
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch

from gocor.lab.runs.ablate import ablate, run_variant
from gocor.lab.runs.variants import TABLE6, VARIANTS
from gocor.lab.runs.report import metrics_table
from gocor.lab.data.splits import HELD_OUT_SPLITS
from gocor.lab.models.matcher import Matcher
from gocor.lab.runs.train import matcher_config, run_config, train


def test_variants_exist_and_differ_only_in_the_correlation_layers():
    assert set(TABLE6) <= set(VARIANTS) and all(Matcher(matcher_config(name)) for name in VARIANTS)
    lr_only = Matcher(matcher_config("global_lr"))
    full = Matcher(matcher_config("global"))
    assert lr_only.global_gocor.solver.prior is None and full.global_gocor.solver.prior is not None
    assert type(Matcher(matcher_config("init_zeros")).global_gocor.initializer).__name__ == "ZerosInitializer"
    lq = Matcher(matcher_config("gocor_local_lq"))
    assert all(m.solver.prior is not None for m in lq.local_gocor)
    assert all(m.solver.prior is None for m in Matcher(matcher_config("gocor")).local_gocor)
    base = {k for k in Matcher(matcher_config("corr")).state_dict() if "gocor" not in k}
    assert base == {k for k in full.state_dict() if "gocor" not in k}


def test_runs_are_cached_and_tabulated(tmp_path):
    results = ablate(("corr", "global_lr"), seeds=1, profile="tiny", out=tmp_path, device="cpu", progress=False)
    assert [r["variant"] for r in results] == ["corr", "global_lr"]
    for r in results:
        path = tmp_path / f"{r['variant']}-seed0" / "result.json"
        assert json.loads(path.read_text()) == r
        assert set(r["metrics"]) == set(HELD_OUT_SPLITS) and r["train_config"]["steps"] == 6
        assert "copy_rate" in r["metrics"]["near_repetitive"]
    stamp = (tmp_path / "corr-seed0" / "result.json").stat().st_mtime_ns
    again = run_variant("corr", 0, "tiny", tmp_path, device="cpu", progress=False)
    assert again == results[0] and (tmp_path / "corr-seed0" / "result.json").stat().st_mtime_ns == stamp
    text = metrics_table(results, "standard")
    assert text.count("\n| ") == 2 and "| `corr` | 1 |" in text and "| `global_lr` | 1 |" in text


def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path):
    cfg = run_config("global_lr", "tiny", 0)
    train(cfg, tmp_path / "global_lr-seed0", device="cpu", progress=False, stop_after=3)    # killed
    # the weights are compared: one split evaluated (all of them: test_runs_are_cached_and_tabulated)
    resumed = run_variant("global_lr", 0, "tiny", tmp_path, device="cpu", progress=False, splits=("standard",))
    train(cfg, tmp_path / "whole", device="cpu", progress=False)
    a = torch.load(tmp_path / "global_lr-seed0" / "last.pt", map_location="cpu", weights_only=True)["model"]
    b = torch.load(tmp_path / "whole" / "last.pt", map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a) and resumed["train_config"] == asdict(cfg)


def test_cli_lists_and_rejects(tmp_path, capsys):
    # the command line in this process (``python -m gocor`` itself runs as a subprocess in
    # test_runs' help test and test_train_eval's evaluate tests)
    from gocor.tools.cli import main
    main(["ablate", "--list"])
    listed = capsys.readouterr().out
    assert all(name in listed for name in VARIANTS)
    with pytest.raises(SystemExit) as exc:
        main(["ablate", "--variants", "nope"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown variant"):
        run_variant("nope", 0, "tiny", tmp_path)


def test_capacity_matched_control_adds_about_gocors_parameters_and_starts_as_correlation():
    count = lambda name: sum(p.numel() for p in Matcher(matcher_config(name)).parameters())
    added_gocor, added_post = count("gocor") - count("corr"), count("corr_post") - count("corr")
    assert abs(added_post - added_gocor) <= 0.05 * added_gocor
    from gocor.lab.models.volume_post import VolumePost
    post, vol = VolumePost(), torch.rand(2, 36, 6, 6)
    assert torch.equal(post(vol, (6, 6)), vol)                          # readout starts at zero
    with torch.no_grad():
        post.readout.fill_(1.0)
    assert not torch.equal(post(vol, (6, 6)), vol)


def test_frozen_variant_keeps_its_objective_at_init(tmp_path):
    from gocor.lab.models.parameters import objective_parameters
    result = run_variant("gocor_frozen", 0, "tiny", tmp_path, device="cpu", progress=False,
                         splits=("standard",))      # the weights are what is tested: one split
    assert result["train_config"]["objective_lr_scale"] == 0.0
    from gocor.lab.device import machine_info
    assert result["machine"] == machine_info()          # what its float rounding depends on
    trained = Matcher(matcher_config("gocor"))
    trained.load_state_dict(torch.load(tmp_path / "gocor_frozen-seed0" / "last.pt", map_location="cpu",
                                       weights_only=True)["model"])
    torch.manual_seed(0)
    init = Matcher(matcher_config("gocor"))
    moved = [(a - b).abs().max().item() for a, b in zip(objective_parameters(trained), objective_parameters(init))]
    assert max(moved) == 0.0
    assert any(not torch.equal(a, b) for a, b in zip(trained.global_decoder.parameters(),
                                                    init.global_decoder.parameters()))


def test_analysis_steps_curve_and_learned_objectives(tmp_path):
    from gocor.lab.runs.analysis import analyze, solver_steps
    # analyze() loads the checkpoints and evaluates them itself: the runs' own records on one split
    ablate(("corr", "gocor"), seeds=1, profile="tiny", out=tmp_path, device="cpu", progress=False,
           splits=("standard",))
    res = analyze(tmp_path, device="cpu", steps=(0, 1, 3), splits=("standard", "dynamic"))
    curve = res["steps"]["runs"]["gocor-seed0"]
    assert set(curve) == {"standard", "dynamic"} and res["steps"]["steps"] == [0, 1, 3]
    assert len(curve["standard"]["aepe"]) == 3 and res["steps"]["trained_steps"] == 3
    assert len(set(curve["standard"]["aepe"])) > 1                 # the step count changes the flow
    objectives = res["objectives"]["runs"]
    assert set(objectives) == {"gocor-seed0"}                       # corr has no GOCor module
    assert {"global_gocor", "local_gocor.0", "local_gocor.1"} == set(objectives["gocor-seed0"])
    glob = objectives["gocor-seed0"]["global_gocor"]
    assert len(glob["y"]) == len(res["objectives"]["distances"]) and 0 < glob["m"][0] <= 1
    stamp = (tmp_path / "steps.json").stat().st_mtime_ns
    analyze(tmp_path, device="cpu", steps=(0, 1, 3), splits=("standard", "dynamic"))
    assert (tmp_path / "steps.json").stat().st_mtime_ns == stamp     # cached: the runs did not change
    model = Matcher(matcher_config("gocor"))
    with solver_steps(model, 7):
        assert model.global_gocor.config.num_iter == 7
    assert model.global_gocor.config.num_iter == 3


class TestFanOut:
    """ablate's runs spread over worker processes (or submitit) give the sequential results."""

    @staticmethod
    def _same(a, b):
        drop = lambda r: {k: v for k, v in r.items() if k != "wall_time_s"}
        return [drop(r) for r in a] == [drop(r) for r in b]

    def test_two_local_workers_equal_the_sequential_run(self, tmp_path):
        # the ci profile, as the fan-out's acceptance check asks (its 480-pair pool is made in
        # each process: ~2 s twice)
        runs = dict(variants=("corr",), seeds=2, profile="ci", device="cpu", progress=False, steps=2,
                    splits=("standard",), threads=1)
        # the sequential baseline in a fresh process too: in this one, earlier tests have warmed
        # torch's CPU kernels at another thread count, which can change float rounding
        code = ("import json, sys; from pathlib import Path; from gocor.lab.runs.ablate import ablate; "
                f"ablate(out=Path(sys.argv[1]), **{runs!r})")
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "seq")], check=True, capture_output=True)
        seq = [json.loads((tmp_path / "seq" / f"corr-seed{s}" / "result.json").read_text()) for s in (0, 1)]
        par = ablate(out=tmp_path / "par", jobs=2, **runs)
        assert [(r["variant"], r["seed"]) for r in par] == [("corr", 0), ("corr", 1)]
        assert par[0]["train_config"]["steps"] == 2 and par[0]["metrics"] != par[1]["metrics"]   # two seeds, two runs
        assert self._same(seq, par)

    def test_submitit_local_executor(self, tmp_path):
        pytest.importorskip("submitit")
        runs = dict(variants=("corr",), seeds=1, profile="tiny", device="cpu", progress=False, steps=2,
                    splits=("standard",), threads=1)
        seq = ablate(out=tmp_path / "seq", **runs)
        sub = ablate(out=tmp_path / "sub", engine="submitit-local", **runs)
        assert self._same(seq, sub)

    def test_bad_engine_and_jobs_are_refused(self, tmp_path):
        with pytest.raises(ValueError, match="engine"):
            ablate(("corr",), 1, "tiny", tmp_path, engine="ray")
        with pytest.raises(ValueError, match="jobs"):
            ablate(("corr",), 1, "tiny", tmp_path, jobs=0)
