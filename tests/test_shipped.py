"""CI verifies the shipped results instead of regenerating them: every shipped checkpoint is the
file its manifest names and re-evaluates to the metrics recorded for it, and a short recorded
training run is reproduced step for step."""
import hashlib
import json
from pathlib import Path

import pytest

from gocor.lab.runs.evaluate import evaluate_checkpoint
from gocor.lab.runs.results import read_result
from gocor.lab.runs.train import TrainConfig, train
from gocor.lab.runs.variants import run_name

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = sorted((ROOT / "data" / "checkpoints").rglob("*.pt"))
REL = 1e-4            # float rounding across code versions (summation order), far below any effect reported


def _close(got: float, want: float, digits: int | None = None) -> bool:
    """Equal to float rounding (and to the recorded rounding, for values stored with ``digits``)."""
    slack = 0.5 * 10.0 ** -digits if digits else 0.0
    return abs(got - want) <= REL * max(abs(want), 1e-3) + slack


def test_every_checkpoint_has_a_manifest():
    assert len(CHECKPOINTS) >= 6
    for pt in CHECKPOINTS:
        assert pt.with_suffix(".json").exists(), f"{pt} has no manifest"


@pytest.mark.parametrize("pt", CHECKPOINTS, ids=lambda p: str(p.relative_to(ROOT / "data" / "checkpoints")))
class TestShippedCheckpoint:
    def test_is_the_file_its_manifest_names(self, pt):
        manifest = json.loads(pt.with_suffix(".json").read_text())
        assert hashlib.sha256(pt.read_bytes()).hexdigest() == manifest["sha256"]

    def test_reevaluates_to_its_recorded_metrics(self, pt):
        manifest = json.loads(pt.with_suffix(".json").read_text())
        # the matchers' manifests keep 4 digits (metrics_digits), the ablation's the full values
        recorded, digits = manifest["metrics"], manifest.get("metrics_digits")
        got = evaluate_checkpoint(pt, "standard")          # 96 pairs; the other splits cost more and add little
        for key in ("aepe", "pck1", "pck5", "f1"):
            assert _close(got[key], recorded["standard"][key], digits), (pt.name, key, got[key], recorded["standard"][key])

    def test_manifest_agrees_with_the_shipped_run(self, pt):
        manifest = json.loads(pt.with_suffix(".json").read_text())
        folder = "ablation" if pt.parent.name == "ablation" else "matchers"
        run = ROOT / "data" / "results" / folder / f"{run_name(manifest['variant'], manifest['seed'])}.json"
        assert read_result(run)["metrics"] == manifest["metrics"]


def test_short_run_reproduces_its_recorded_history(tmp_path):
    record = json.loads((ROOT / "data" / "results" / "ci" / "gocor-short.json").read_text())
    summary = train(TrainConfig(**record["train_config"]), tmp_path / "run", progress=False)
    assert [h["step"] for h in summary["history"]] == [h["step"] for h in record["history"]]
    for got, want in zip(summary["history"], record["history"]):
        assert _close(got["loss"], want["loss"]) and _close(got["val_aepe"], want["val_aepe"]), (got, want)
