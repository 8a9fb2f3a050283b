"""scripts/time_train_step.py: both variants timed in one process, ratios to the first."""
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "time_train_step.py"


def test_times_both_variants_interleaved(capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    result = main(["--variants", "corr", "global_lr", "--profile", "tiny", "--rounds", "2", "--warmup", "1"])
    assert list(result) == ["corr", "global_lr"]
    assert result["corr"]["ratio"] == 1.0 and all(r["ms"] > 0 for r in result.values())
    out = capsys.readouterr().out
    assert "global_lr" in out and "x corr" in out and "median of 2 interleaved rounds" in out


import pytest  # noqa: E402


@pytest.mark.parametrize("argv, named", [(["--rounds", "0"], "--rounds must be 1 or more"),
                                         (["--variants", "corr", "nope"], "unknown variant 'nope'"),
                                         (["--threads", "0"], "--threads must be 1 or more")])
def test_bad_arguments_exit_2_before_any_timing(argv, named, capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    with pytest.raises(SystemExit) as bad:
        main(argv)
    assert bad.value.code == 2 and named in capsys.readouterr().err
