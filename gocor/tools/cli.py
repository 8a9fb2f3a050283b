"""python -m gocor {bench, train, evaluate, volume-experiment, ablate, reproduce, assignments}

Every command takes its model by one name, a variant of ``python -m gocor ablate --list``
(gocor.lab.runs.variants). A wrong argument or an unusable file ends with ``error: ...`` and
exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu | cuda | cuda:N (default: cuda when available, else cpu)")


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_seeds(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--seeds", type=int, default=default, help=f"seeds 0..SEEDS-1 of every run (default {default})")


def _add_steps(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--steps", type=int, help=f"training steps (default: {what}; 0 evaluates the initial model)")


def _at_least(args, name: str, least: int) -> None:
    """A UserError naming ``--NAME`` when ``args.NAME`` is given and below ``least``."""
    value = getattr(args, name.replace("-", "_"))
    if value is not None and value < least:
        from ..lab.errors import UserError
        raise UserError(f"--{name} must be {least} or more, got {value}")


def _run_dir(path: str, resume: bool) -> None:
    """A run folder is a folder, and a finished or interrupted run in it is only continued on
    purpose (``--resume``), never overwritten by a fresh run."""
    from ..lab.errors import UserError
    run_dir = Path(path)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run-dir {path}: exists and is not a folder")
    if not resume and (run_dir / "last.pt").exists():
        raise UserError(f"--run-dir {path}: holds a run (last.pt); pass --resume to continue it, or "
                        f"choose another --run-dir (it is not overwritten)")


def _steps(args) -> dict:
    """``{"steps": N}`` when --steps was given (0 included), else nothing."""
    if args.steps is None:
        return {}
    if args.steps < 0:
        from ..lab.errors import UserError
        raise UserError(f"--steps must be 0 or more, got {args.steps}")
    return {"steps": args.steps}


def _writable_file(path: str | None, option: str) -> None:
    """Check before the work that ``path`` can be written (its folder exists or can be made, and
    it is not a folder), so that minutes of results are not lost at the end."""
    if path is None:
        return
    from ..lab.errors import UserError
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)    # made now rather than after the work
    except OSError as e:
        raise UserError(f"{option} {path}: cannot make its folder {target.parent} ({e.strerror})") from None
    if not os.access(target.parent, os.W_OK):
        raise UserError(f"{option} {path}: {target.parent} is not writable")


def _bench(args) -> None:
    from .bench import format_matchers, format_table, run_all
    _at_least(args, "batch", 1)
    _at_least(args, "channels", 1)
    _writable_file(args.json_out, "--json-out")
    result = run_all(args.batch, args.channels)
    print(format_table(result), end="\n\n")
    print(format_matchers(result["matcher_rows"]))
    if args.json_out:
        from ..lab.files import write_json
        write_json(args.json_out, result)


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="time/memory/FLOPs of correlation vs GOCor, and matcher training steps")
    p.add_argument("--batch", type=int, default=4, help="batch of the layer cases")
    p.add_argument("--channels", type=int, default=64, help="feature channels of the layer cases")
    p.add_argument("--json-out", metavar="FILE", help="also write the results to this JSON file")
    p.set_defaults(fn=_bench)


def _train(args) -> None:
    from ..lab.runs.train import run_config, train
    cfg = run_config(args.variant, args.profile, args.seed, **_steps(args))
    _run_dir(args.run_dir, args.resume)
    result = train(cfg, args.run_dir, resume=args.resume, device=args.device, progress=not args.no_progress)
    print(json.dumps({k: v for k, v in result.items() if k != "history"} | {"final": result["history"][-1:]},
                     allow_nan=False))


def add_train(sub) -> None:
    from ..lab.runs.train import PROFILES
    from ..lab.runs.variants import VARIANTS
    p = sub.add_parser("train", help="train one variant's matcher on synthetic pairs")
    p.add_argument("--variant", default="corr", choices=list(VARIANTS), metavar="VARIANT",
                   help="one of: " + ", ".join(VARIANTS) + " (default corr)")
    p.add_argument("--profile", default="quick", choices=list(PROFILES))
    _add_steps(p, "the profile's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", required=True, help="the run folder: RUN_DIR/last.pt is written there")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    _add_device(p)
    _add_progress(p)
    p.set_defaults(fn=_train)


def _evaluate(args) -> None:
    from ..lab.runs.evaluate import evaluate_checkpoint
    split = None if args.pairs else (args.split or "standard")
    print(json.dumps(evaluate_checkpoint(args.checkpoint, split, args.pairs, args.device), indent=1,
                     allow_nan=False))


def add_evaluate(sub) -> None:
    from ..lab.data.splits import TEST_SPLITS
    p = sub.add_parser("evaluate", help="metrics of a checkpoint on a held-out split or your pairs, as JSON")
    p.add_argument("--checkpoint", required=True)
    data = p.add_mutually_exclusive_group()
    # no default here: argparse does not count an option left at its default as given, so
    # "--split standard --pairs X" would pass the exclusive group
    data.add_argument("--split", choices=TEST_SPLITS, help="an evaluation split (default standard)")
    data.add_argument("--pairs", help=".npz with source, target, flow, mask (see gocor.lab.runs.evaluate.load_pairs)")
    _add_device(p)
    p.set_defaults(fn=_evaluate)


def _volume_experiment(args) -> None:
    from ..lab.files import write_json
    from ..lab.runs.volume_experiment import VolumeExperimentConfig, run_all, summarize
    cfg = VolumeExperimentConfig(**_steps(args))
    _at_least(args, "seeds", 1)
    _writable_file(args.json_out, "--json-out")
    save_dir = Path(args.json_out).parent if args.json_out else None
    results = run_all(cfg, tuple(args.layers), args.seeds, args.device, progress=not args.no_progress,
                      save_dir=save_dir)
    summary = summarize(results)
    for layer, metrics in summary.items():
        print(layer, {k: f"{m:.3f} ± {sd:.3f}" for k, (m, sd) in metrics.items()})
    if args.json_out:
        write_json(args.json_out, {"results": results, "summary": summary})


def add_volume_experiment(sub) -> None:
    from ..lab.runs.volume_experiment import LAYERS
    p = sub.add_parser("volume-experiment", help="the minimal experiment: a feature head trained through "
                       "correlation vs GOCor on near-repetitive pairs, held-out coarse accuracy")
    p.add_argument("--layers", nargs="+", default=list(LAYERS), choices=LAYERS)
    _add_seeds(p, 3)
    _add_steps(p, "300")
    p.add_argument("--json-out", metavar="FILE",
                   help="write every run and the summary to this JSON file (the seed-0 models beside it)")
    _add_device(p)
    _add_progress(p)
    p.set_defaults(fn=_volume_experiment)


def _ablate(args) -> None:
    from ..lab.runs import report
    from ..lab.runs.ablate import ablate
    from ..lab.runs.analysis import analyze
    from ..lab.runs.variants import VARIANTS
    if args.list:
        for name, v in VARIANTS.items():
            print(f"{name:15s} {v.description}")
        return
    from ..lab.errors import UserError
    _at_least(args, "seeds", 1)
    _at_least(args, "jobs", 1)
    slurm = {}
    for item in args.slurm or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--slurm takes KEY=VALUE (submitit parameters), got {item!r}")
        slurm[key] = int(value) if value.isdigit() else value
    from .reproduce import folder
    runs_dir = args.runs_dir or f"build/{folder(args.profile)}"
    results = ablate(tuple(args.variants), args.seeds, args.profile, runs_dir, args.device, not args.no_progress,
                     jobs=args.jobs, engine=args.engine, slurm=slurm)
    analyze(runs_dir, device=args.device)
    for split in ("standard", "dynamic", "near_repetitive"):
        print(f"{split}:\n" + report.metrics_table(results, split, ("aepe", "pck1", "pck5", "f1", "coarse_acc")), end="\n\n")


def add_ablate(sub) -> None:
    from ..lab.runs.train import PROFILES
    from ..lab.runs.variants import TABLE6, VARIANTS
    p = sub.add_parser("ablate", help="train every ablation variant over seeds (cached, resumable) and tabulate")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    p.add_argument("--variants", nargs="+", default=list(TABLE6), choices=list(VARIANTS), metavar="VARIANT",
                   help=f"variants to run (default: the paper's Table 6: {' '.join(TABLE6)})")
    p.add_argument("--profile", default="quick", choices=list(PROFILES))
    _add_seeds(p, 3)
    p.add_argument("--runs-dir", help="one run folder per variant and seed, result.json in each (default "
                                      "build/protocol2 for the large profile, else build/ablation)")
    _add_device(p)
    _add_progress(p)
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at once (local: worker processes with cores/N threads each; SLURM: array parallelism)")
    p.add_argument("--engine", choices=["sequential", "local", "submitit-local", "submitit-slurm"],
                   help="where the runs go (default: sequential, or local with --jobs > 1); submitit-*: "
                        "pip install 'gocor[cluster]'")
    p.add_argument("--slurm", nargs="+", metavar="KEY=VALUE",
                   help="submitit parameters for --engine submitit-slurm, e.g. slurm_partition=gpu gpus_per_node=1")
    p.set_defaults(fn=_ablate)


def _reproduce(args) -> None:
    from .reproduce import NotReproduced, reproduce
    _at_least(args, "seeds", 1)
    _at_least(args, "threads", 1)
    try:
        reproduce(args.build_dir, update=args.update, profile=args.profile, ablation=not args.no_ablation,
                  variants=tuple(args.variants) if args.variants else None,
                  seeds=tuple(range(args.seeds)) if args.seeds is not None else None, all_runs=args.all,
                  threads=args.threads)
    except NotReproduced as e:                  # everything is written; the exit status says the check failed
        print(f"reproduce: {e}", file=sys.stderr)
        sys.exit(1)


def add_reproduce(sub) -> None:
    from ..lab.runs.train import PROFILES
    from ..lab.runs.variants import VARIANTS
    p = sub.add_parser("reproduce", help="retrain the Table-6 variants (seed 0; --all: everything, hours) "
                                         "and check them against the shipped runs, then every notebook and a "
                                         "summary, into build/ (resumable)")
    p.add_argument("--build-dir", default="build",
                   help="protocol2/ (ablation/ for the other profiles), notebooks/, figures/ and summary.md go here")
    p.add_argument("--profile", choices=list(PROFILES), default="large",
                   help="training profile (default large: protocol v2's shipped runs, so they can be compared; "
                        "quick: protocol 1's)")
    p.add_argument("--all", action="store_true", help="every shipped variant x its shipped seeds (hours on a CPU; "
                                                         "resumable)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), metavar="VARIANT",
                   help="variants to run (default: the Table-6 ones; with --all every shipped one)")
    p.add_argument("--seeds", type=int, help="seeds 0..SEEDS-1 (default: seed 0; with --all the shipped "
                                                  "seeds)")
    p.add_argument("--threads", type=int, help="torch threads for the runs (default: the shipped runs' machine's, "
                                                   "2; with another count, or on a CPU that rounds differently, the "
                                                   "fresh runs are checked against the shipped seeds' spread, not "
                                                   "digit by digit)")
    p.add_argument("--no-ablation", action="store_true", help="only execute the notebooks (on the shipped results)")
    p.add_argument("--update", action="store_true", help="also copy the executed notebooks back into notebooks/")
    p.set_defaults(fn=_reproduce)


def add_assignments(sub) -> None:
    """The grading command's parser and handler live beside the grading code."""
    from ..teach import assignments
    assignments.add_parser(sub)


COMMANDS = (add_bench, add_train, add_evaluate, add_volume_experiment, add_ablate, add_reproduce, add_assignments)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gocor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    from ..lab.errors import UserError
    args = parser().parse_args(argv)
    try:
        args.fn(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
