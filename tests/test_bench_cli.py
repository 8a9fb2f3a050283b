"""The benchmark's measurements and table, and the train CLI (small sizes)."""
import json
import subprocess
import sys

import pytest
from pathlib import Path
import torch

from gocor.tools.bench import CASES, format_table, run_case


def test_run_case_measures_every_layer():
    rows = [run_case(name, batch=1, channels=4, repeats=1, warmup=0) for name in CASES]
    for r in rows:
        assert r["seconds"] > 0 and r["matmul_gflop"] + r["elementwise_gflop"] > 0
    by = {r["case"]: r for r in rows}
    assert by["GlobalGOCor (GLU-Net-GOCor, 3 steps)"]["matmul_gflop"] > 10 * by["global correlation"]["matmul_gflop"]
    assert by["LocalGOCor r=4, 7 steps"]["matmul_gflop"] > by["LocalGOCor r=4, 3 steps"]["matmul_gflop"]
    for r in rows:
        assert r["machine_gflops"] > 0
        assert abs(r["floor_seconds"] * r["machine_gflops"] - r["needed_gflop"]) < 1e-9
        assert 0 < r["needed_gflop"] <= r["matmul_gflop"] * (1 + 1e-9)       # the floor is never above the work done
    # the algorithmic floor: 3 passes of 2·B·C·H·W·(2r+1)², whatever the implementation computes
    assert by["local correlation r=4"]["needed_gflop"] * 1e9 == 3 * 2 * 1 * 4 * 64 * 64 * 81
    assert by["GlobalGOCor (GLU-Net-GOCor, 3 steps), C=512"]["channels"] == 512
    table = format_table({"machine": "test", "torch": torch.__version__, "batch": 1, "channels": 4, "rows": rows})
    assert table.count("\n| ") == len(CASES) + 1 and "GlobalGOCor" in table


def test_train_cli_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--profile", "tiny", "--run-dir", str(out), "--no-progress", "--device", "cpu"]
    first = subprocess.run([sys.executable, "-m", "gocor", *args], capture_output=True, text=True, check=True)
    assert json.loads(first.stdout.strip().splitlines()[-1])["steps"] == 6
    # the resume and the refusal in this process (one start of python -m gocor is enough)
    from gocor.tools.cli import main
    main(args + ["--resume"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 6
    with pytest.raises(SystemExit) as bad:
        main(args[:-2] + ["--variant", "nope"])
    err = capsys.readouterr().err
    assert bad.value.code == 2 and "invalid choice: 'nope'" in err and "global_lr" in err


def test_matcher_rows_and_their_table():
    from gocor.tools.bench import format_matchers, run_data_case, run_matcher_case
    rows = [run_matcher_case(m, "tiny", repeats=1, warmup=0) for m in ("corr", "gocor")] + [run_data_case("tiny", repeats=2)]
    by = {r["case"]: r for r in rows}
    assert by["train step corr"]["batch"] == 2 and by["train step gocor"]["seconds"] > 0
    assert 0 < by["data per batch"]["seconds"] < by["data per batch"]["make_seconds"]      # the pool is the cheap path
    table = format_matchers(rows, "tiny")
    assert table.count("\n| ") == 5 and "× corr" in table and "of a corr step" in table


@pytest.mark.parametrize("name", ["README.md/x.json", "."])
def test_bench_refuses_an_unwritable_json_out_before_measuring(name, capsys):
    """A --json-out that cannot be written is refused first (it was found only after the minute of
    measurements, which were then lost)."""
    from gocor.tools.cli import main
    path = Path(__file__).resolve().parent.parent / name
    with pytest.raises(SystemExit) as bad:
        main(["bench", "--json-out", str(path)])
    assert bad.value.code == 2 and "--json-out" in capsys.readouterr().err


def test_a_row_faster_than_its_measured_peak_is_flagged():
    from gocor.tools.bench import format_table
    row = dict(case="c", seconds=0.0056, peak_mib=1.0, needed_gflop=0.805, matmul_gflop=0.805,
               elementwise_gflop=0.001, gflops=143.6, machine_gflops=91.6, floor_seconds=0.805 / 91.6)
    result = {"machine": "m", "torch": "t", "batch": 4, "channels": 64}
    flagged = format_table(dict(result, rows=[row]))
    assert "0.6x (peak dipped) |" in flagged and "run the bench again" in flagged
    plain = format_table(dict(result, rows=[dict(row, gflops=50.0)]))
    assert "(peak dipped)" not in plain
