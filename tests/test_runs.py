"""The lab's run plumbing: per-level matcher configs (old checkpoints load), the variants registry,
atomic writes, the one result schema and reader, the command line."""
import json
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gocor.lab.errors import UserError
from gocor.lab.files import atomic_write, read_json, write_json
from gocor.lab.models.matcher import GLOBAL_LEVEL, LOCAL_LEVEL, Matcher, MatcherConfig
from gocor.lab.runs.checkpoint import CheckpointError
from gocor.lab.runs.evaluate import load_matcher
from gocor.lab.runs.results import SCHEMA, check_result, load_runs, result_paths
from gocor.lab.runs.train import PROFILES, matcher_config, run_config, train
from gocor.lab.runs.variants import VARIANTS, parse_run_name, run_name
from gocor.tools.cli import main

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from migrate_results import migrate  # noqa: E402

# the flat configs of the matcher before the per-level ones, as checkpoints stored them (the
# fields a checkpoint of that time wrote, defaults left out as the older ones did), and the
# variant each became
FLAT = {
    "corr": {"global_corr": "corr", "local_corr": "corr"},
    "gocor": {"global_corr": "gocor", "local_corr": "gocor"},
    "global": {"global_corr": "gocor", "local_corr": "corr"},
    "global_lr": {"global_corr": "gocor", "local_corr": "corr", "global_query_loss": False},
    "local": {"global_corr": "corr", "local_corr": "gocor"},
    "gocor_local_lq": {"global_corr": "gocor", "local_corr": "gocor", "local_query_loss": True},
    "corr_post": {"global_corr": "corr", "local_corr": "corr", "post_process": True},
    "init_zeros": {"global_corr": "gocor", "local_corr": "corr", "global_initializer": "zeros"},
}
FLAT_COMMON = {"channels": [16, 32, 64], "search_radius": 3, "gocor_steps": 3, "image_size": 64}


class TestMatcherConfig:
    @pytest.mark.parametrize("name", list(FLAT))
    def test_flat_configs_rebuild_the_same_matcher(self, name):
        old = MatcherConfig.from_dict({**FLAT[name], **FLAT_COMMON})
        assert old == matcher_config(name)
        assert MatcherConfig.from_dict(old.to_dict()) == old                        # round trip

    def test_levels_hold_the_layers_config(self):
        cfg = matcher_config("gocor_local_lq")
        assert cfg.global_level == GLOBAL_LEVEL and cfg.local_level == LOCAL_LEVEL.replace(query_loss=True)
        m = Matcher(cfg)
        assert m.global_gocor.config == cfg.global_level and all(l.config == cfg.local_level for l in m.local_gocor)
        assert matcher_config("corr").global_level is None and Matcher(matcher_config("corr")).global_gocor is None
        assert cfg.solver_steps == 3 and matcher_config("corr").solver_steps is None

    def test_invalid_combinations_cannot_be_built(self):
        with pytest.raises(ValueError, match="post_process is the control"):
            MatcherConfig(global_level=GLOBAL_LEVEL, post_process=True)
        with pytest.raises(ValueError, match="search_radius"):
            MatcherConfig(local_level=LOCAL_LEVEL.replace(search_radius=4))
        with pytest.raises(TypeError, match="global_level must be a GOCorConfig"):
            MatcherConfig(global_level="gocor")
        with pytest.raises(ValueError, match="global_corr must be"):
            MatcherConfig.from_dict({**FLAT_COMMON, "global_corr": "GOCor"})

    @pytest.mark.parametrize("path, name", [("gocor.pt", "gocor"), ("corr.pt", "corr"),
                                            ("ablation/global_lr-seed0.pt", "global_lr")])
    def test_shipped_flat_checkpoints_load(self, path, name):
        model, obj = load_matcher(ROOT / "data" / "checkpoints" / path, "cpu")
        assert "global_corr" in obj["matcher_config"]            # written before the per-level configs
        assert model.config == matcher_config(name)


class TestVariants:
    def test_one_name_per_configuration(self):
        configs = [(matcher_config(n), tuple(sorted(VARIANTS[n].train.items()))) for n in VARIANTS]
        assert len(set(map(repr, configs))) == len(VARIANTS)

    def test_run_config_carries_the_variants_training_changes(self, tmp_path):
        assert run_config("gocor_frozen", "tiny").objective_lr_scale == 0.0
        assert run_config("gocor", "tiny", 2, steps=4) == replace(PROFILES["tiny"], variant="gocor", seed=2, steps=4)
        with pytest.raises(UserError, match="trains with objective_lr_scale=0.0"):
            train(replace(PROFILES["tiny"], variant="gocor_frozen"), tmp_path, device="cpu", progress=False)
        with pytest.raises(UserError, match="unknown variant 'gocor_global'"):
            run_config("gocor_global")

    def test_run_names(self):
        assert run_name("gocor_local_lq", 2) == "gocor_local_lq-seed2"
        assert parse_run_name(run_name("gocor_local_lq", 2)) == ("gocor_local_lq", 2)
        with pytest.raises(UserError, match="not a run name"):
            parse_run_name("gocor")


class TestAtomicWrite:
    def test_a_failed_write_leaves_the_old_file(self, tmp_path):
        path = write_json(tmp_path / "result.json", {"a": 1})

        def half(tmp):
            tmp.write_text('{"a": ')
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            atomic_write(path, half)
        assert read_json(path) == {"a": 1} and list(tmp_path.iterdir()) == [path]

    def test_a_kill_mid_write_leaves_no_trusted_result(self, tmp_path):
        """A process killed (SIGKILL) in the middle of writing result.json leaves no result.json:
        the run is not taken as finished, and its leftover temporary file is not a result."""
        if not hasattr(signal, "SIGKILL"):
            pytest.skip("no SIGKILL on this platform")
        run = tmp_path / "corr-seed0"
        code = (f"import os, signal\nfrom gocor.lab.files import atomic_write\n"
                f"def killed(tmp):\n    tmp.write_text('{{\"schema\": ')\n    os.kill(os.getpid(), signal.SIGKILL)\n"
                f"atomic_write({str(run / 'result.json')!r}, killed)\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == -signal.SIGKILL
        assert not (run / "result.json").exists() and [p.name for p in run.iterdir()][0].endswith(".tmp")
        assert result_paths(tmp_path) == []

    def test_a_truncated_file_is_a_user_error_naming_it(self, tmp_path):
        (tmp_path / "result.json").write_text('{"schema": ')
        with pytest.raises(UserError, match="result.json: not valid JSON"):
            read_json(tmp_path / "result.json")


class TestResults:
    def test_shipped_results_follow_the_schema(self):
        for folder in ("ablation", "matchers"):
            runs = load_runs(ROOT / "data" / "results" / folder)
            assert runs and all(r["schema"] == SCHEMA and r["variant"] in VARIANTS for r in runs)
            assert all(r["train_config"]["variant"] == r["variant"] for r in runs)

    def test_older_records_are_refused_with_the_fix(self, tmp_path):
        with pytest.raises(UserError, match="migrate_results.py"):
            check_result({"variant": "corr", "seed": 0, "metrics": {}}, tmp_path / "corr-seed0.json")
        with pytest.raises(UserError, match="without dirty"):
            check_result({"schema": SCHEMA, **dict.fromkeys(("variant", "seed", "profile", "train_config", "metrics",
                                                             "wall_time_s", "device", "commit"))}, "x.json")

    def test_migration_keeps_values(self):
        old = {"model": "gocor", "seed": 1, "command": "python -m gocor train --model gocor --profile quick --seed 1",
               "commit": "abc-dirty", "wall_time_s": 3.5, "device": "cpu", "train_config": {"model": "gocor", "steps": 5},
               "test_metrics": {"standard": {"aepe": 1.25}}}
        new = migrate(old)
        assert check_result(new, "new") and new["metrics"] == old["test_metrics"] and new["profile"] == "quick"
        assert (new["commit"], new["dirty"], new["train_config"]) == ("abc", True, {"variant": "gocor", "steps": 5})
        assert migrate(new) is new


class TestCommandLine:
    def test_steps_zero_is_honoured(self, tmp_path, capsys):
        main(["train", "--variant", "corr", "--profile", "tiny", "--steps", "0", "--run-dir", str(tmp_path),
              "--no-progress", "--device", "cpu"])
        assert json.loads(capsys.readouterr().out)["steps"] == 0
        model, obj = load_matcher(tmp_path / "last.pt", "cpu")
        assert obj["step"] == 0 and obj["train_config"]["steps"] == 0

    def test_user_errors_exit_2_without_traceback(self, tmp_path, capsys):
        for argv, said in ((["train", "--profile", "tiny", "--steps", "-1", "--run-dir", str(tmp_path)], "--steps"),
                           (["evaluate", "--checkpoint", str(tmp_path / "none.pt")], "no such checkpoint")):
            with pytest.raises(SystemExit) as exc:
                main(argv)
            assert exc.value.code == 2 and said in capsys.readouterr().err
        assert issubclass(CheckpointError, UserError)

    def test_bad_arguments_are_user_errors_before_any_work(self, tmp_path, capsys):
        """Each of these ends with exit status 2 and a message naming the argument, before any
        training (no traceback, no silent no-op, no overwritten run)."""
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "last.pt").write_bytes(b"a finished run")
        (tmp_path / "afile").write_text("x")
        train = ["train", "--profile", "tiny", "--no-progress", "--device", "cpu", "--run-dir"]
        cases = ((train + [str(tmp_path / "run")], "pass --resume"),
                 (train + [str(tmp_path / "afile")], "not a folder"),
                 (["ablate", "--profile", "tiny", "--seeds", "0", "--runs-dir", str(tmp_path)], "--seeds must be 1"),
                 (["ablate", "--profile", "tiny", "--jobs", "0", "--runs-dir", str(tmp_path)], "--jobs must be 1"),
                 (["ablate", "--profile", "tiny", "--slurm", "gpus", "--runs-dir", str(tmp_path)], "KEY=VALUE"),
                 (["reproduce", "--seeds", "-1", "--build-dir", str(tmp_path)], "--seeds must be 1"),
                 (["volume-experiment", "--seeds", "0"], "--seeds must be 1"),
                 (["bench", "--batch", "0"], "--batch must be 1"),
                 (["evaluate", "--checkpoint", "x.pt", "--device", "tpu"], "device 'tpu': not a device"))
        for argv, said in cases:
            with pytest.raises(SystemExit) as exc:
                main(argv)
            err = capsys.readouterr().err
            assert exc.value.code == 2 and said in err, (argv, err)
        assert (tmp_path / "run" / "last.pt").read_bytes() == b"a finished run"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "run"]

    @pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is absent")
    def test_cuda_asked_for_where_there_is_none(self, capsys):
        from gocor.lab.device import default_device
        with pytest.raises(UserError, match="CUDA is not available here"):
            default_device("cuda")
        assert default_device("cpu") == torch.device("cpu")
        checkpoint = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "gocor.pt"
        with pytest.raises(SystemExit) as exc:     # was: "not a readable checkpoint (truncated ...)"
            main(["evaluate", "--checkpoint", str(checkpoint), "--device", "cuda"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "CUDA is not available" in err and "checkpoint" not in err

    def test_split_and_pairs_are_exclusive(self, capsys):
        with pytest.raises(SystemExit) as exc:
            main(["evaluate", "--checkpoint", "x.pt", "--split", "standard", "--pairs", "p.npz"])
        assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err

    def test_help_names_every_command_and_tables_need_no_torch(self):
        out = subprocess.run([sys.executable, "-m", "gocor", "--help"], capture_output=True, text=True, check=True).stdout
        for cmd in ("bench", "train", "evaluate", "volume-experiment", "ablate", "reproduce", "assignments"):
            assert cmd in out
        code = "import sys, gocor.lab.runs.report; print(sorted({'torch', 'kornia'} & set(sys.modules)))"
        light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert light.stdout.strip() == "[]"
