"""CI verifies the shipped results instead of regenerating them: every shipped checkpoint is the
file its manifest names and re-evaluates to the metrics recorded for it, and a short recorded
training run is reproduced step for step."""
import hashlib
import json
from pathlib import Path

import pytest

from gocor.lab.data.pairs import PairConfig
from gocor.lab.data.splits import held_out_split
from gocor.lab.runs.evaluate import evaluate, evaluate_checkpoint, load_matcher
from gocor.lab.runs.results import read_result
from gocor.lab.runs.train import TrainConfig, train
from gocor.lab.runs.variants import run_name

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = sorted((ROOT / "data" / "checkpoints").rglob("*.pt"))
REL = 1e-4            # float rounding across code versions (summation order), far below any effect reported
SUBSET = 12           # protocol v2's checkpoints: the first pairs of each primary split, pair by pair


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
        if pt.parent.name == "protocol2":       # per-pair records: every metric of each of SUBSET pairs
            run = read_result(_shipped_run(pt, manifest))
            model, _ = load_matcher(pt)
            for split in ("large_motion", "motorcycle"):
                got = evaluate(model, held_out_split(split, PairConfig(photometric=False), n=SUBSET), per_pair=True)
                for key, values in run["per_pair"][split].items():
                    # shares of pixels / cells may move by a pixel at a threshold: 1e-3 (3 of ~2800)
                    close = (lambda g, w: _close(g, w, 4)) if key == "aepe" else (lambda g, w: abs(g - w) <= 1e-3)
                    for i, (g, w) in enumerate(zip(got["per_pair"][key], values[:SUBSET])):
                        assert (w is None and g != g) or close(g, w), (pt.name, split, key, i, g, w)
            return
        # the matchers' manifests keep 4 digits (metrics_digits), the ablation's the full values
        recorded, digits = manifest["metrics"], manifest.get("metrics_digits")
        got = evaluate_checkpoint(pt, "standard")          # 96 pairs; the other splits cost more and add little
        for key in ("aepe", "pck1", "pck5", "f1"):
            assert _close(got[key], recorded["standard"][key], digits), (pt.name, key, got[key], recorded["standard"][key])

    def test_manifest_agrees_with_the_shipped_run(self, pt):
        manifest = json.loads(pt.with_suffix(".json").read_text())
        assert read_result(_shipped_run(pt, manifest))["metrics"] == manifest["metrics"]


def _shipped_run(pt: Path, manifest: dict) -> Path:
    """The shipped run record of a checkpoint: data/results/<its folder>/<run>.json."""
    folder = pt.parent.name if pt.parent.name in ("ablation", "protocol2") else "matchers"
    return ROOT / "data" / "results" / folder / f"{run_name(manifest['variant'], manifest['seed'])}.json"


BITS = ROOT / "data" / "results" / "ci" / "gocor-bits.json"
# On a machine that rounds differently (another instruction set, torch or thread count: see
# gocor.lab.device.machine_info) training amplifies the last bits step by step, 2-5x a step.
# Measured on an AVX2 machine against the AVX512 records: relative 2.7e-6 up to step 3, then
# 8.5e-5 .. 3.7e-3 over steps 5-20. There the first steps are still checked to REL (the loss at step
# 1 comes before any update: a changed model or loss shows), the later ones only for gross breakage
# (13x the largest measured); the strict checks need the recording machine (CI's).
EARLY_STEPS = 3
ACROSS_MACHINES = 5e-2


def _history_matches(got: list[dict], want: list[dict], same_machine: bool, exact: bool = False) -> None:
    """Every step's loss and validation error: bit for bit (``exact``) or to REL on the recording
    machine; elsewhere to REL for the first EARLY_STEPS steps and to ACROSS_MACHINES after them."""
    assert [h["step"] for h in got] == [h["step"] for h in want]
    for g, w in zip(got, want):
        for key in ("loss", "val_aepe"):
            if same_machine and exact:
                assert g[key] == w[key], (g, w)
            elif same_machine or g["step"] <= EARLY_STEPS:
                assert _close(g[key], w[key]), (g, w)
            else:
                assert abs(g[key] - w[key]) <= ACROSS_MACHINES * abs(w[key]), (g, w)


def test_short_run_reproduces_its_recorded_history(tmp_path):
    """The 20-step record (recorded with the bits record, on its machine, when it names none)."""
    from gocor.lab.device import machine_info, torch_threads
    record = json.loads((ROOT / "data" / "results" / "ci" / "gocor-short.json").read_text())
    machine = record.get("machine") or json.loads(BITS.read_text())["machine"]
    with torch_threads(machine["threads"]):
        summary = train(TrainConfig(**record["train_config"]), tmp_path / "run", progress=False)
        same = machine_info() == machine
    _history_matches(summary["history"], record["history"], same)


_BITS_RUN = """
import json, sys, tempfile
import torch
from gocor.lab.device import machine_info
from gocor.lab.runs.train import TrainConfig, train
record = json.loads(open(sys.argv[1]).read())
torch.set_num_threads(record["machine"]["threads"])
with tempfile.TemporaryDirectory() as tmp:
    summary = train(TrainConfig(**record["train_config"]), tmp + "/run", progress=False)
print(json.dumps({"history": summary["history"], "machine": machine_info()}))
"""


def test_short_run_bit_for_bit_on_the_recording_machine():
    """A change meant to leave CPU training alone (a faster layout, a reused buffer, a pass not
    repeated) must reproduce the recorded 10-step run exactly: every step's loss and validation
    error, bit for bit, on a machine like the one that recorded it (elsewhere to float rounding).
    In a fresh process: earlier training in this one at other thread counts can move rounding."""
    import subprocess
    import sys
    path = BITS
    record = json.loads(path.read_text())
    out = subprocess.run([sys.executable, "-c", _BITS_RUN, str(path)], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert len(result["history"]) == len(record["history"]) == record["train_config"]["steps"]
    _history_matches(result["history"], record["history"], result["machine"] == record["machine"], exact=True)
