"""python -m gocor {bench, train, evaluate, reproduce, assignments}"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace


def _bench(args) -> None:
    from .bench import format_matchers, format_table, run_all
    result = run_all(args.batch, args.channels)
    print(format_table(result), end="\n\n")
    print(format_matchers(result["matcher_rows"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


def _train(args) -> None:
    from ..lab.runs.train import PROFILES, train
    cfg = replace(PROFILES[args.profile], model=args.model, seed=args.seed,
                  **({"steps": args.steps} if args.steps else {}))
    result = train(cfg, args.out, resume=args.resume, device=args.device, progress=not args.no_progress)
    print(json.dumps({k: v for k, v in result.items() if k != "history"} | {"final": result["history"][-1:]},
                     allow_nan=False))


def _evaluate(args) -> None:
    from ..lab.runs.evaluate import evaluate_checkpoint
    print(json.dumps(evaluate_checkpoint(args.checkpoint, args.split, args.pairs, args.device), indent=1,
                     allow_nan=False))


def _volume_experiment(args) -> None:
    from pathlib import Path

    from ..lab.runs.volume_experiment import VolumeExperimentConfig, run_all, summarize
    cfg = VolumeExperimentConfig(**({"steps": args.steps} if args.steps else {}))
    save_dir = Path(args.out).parent if args.out else None
    results = run_all(cfg, tuple(args.layers), args.seeds, args.device, save_dir=save_dir)
    summary = summarize(results)
    for layer, metrics in summary.items():
        print(layer, {k: f"{m:.3f} ± {sd:.3f}" for k, (m, sd) in metrics.items()})
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"results": results, "summary": summary}, indent=1, allow_nan=False) + "\n")


def _ablate(args) -> None:
    from ..lab.runs import report
    from ..lab.runs.ablate import VARIANTS, ablate
    from ..lab.runs.analysis import analyze
    if args.list:
        for name, v in VARIANTS.items():
            print(f"{name:15s} {v.description}  (model {v.model})")
        return
    results = ablate(tuple(args.only), args.seeds, args.profile, args.out, args.device, not args.no_progress)
    analyze(args.out, device=args.device)
    for split in ("standard", "dynamic", "near_repetitive"):
        print(f"{split}:\n" + report.metrics_table(results, split, ("aepe", "pck1", "pck5", "f1", "coarse_acc")), end="\n\n")


def _reproduce(args) -> None:
    from .reproduce import reproduce
    reproduce(args.out, update=args.update, profile=args.profile, ablation=not args.no_ablation,
              variants=tuple(args.only) if args.only else None,
              seeds=tuple(range(args.seeds)) if args.seeds is not None else None, all_runs=args.all)


def main(argv: list[str] | None = None) -> None:
    from ..lab.data.splits import TEST_SPLITS
    from ..lab.models.matcher import CONFIGS
    from ..lab.runs.train import PROFILES
    parser = argparse.ArgumentParser(prog="python -m gocor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bench", help="time/memory/FLOPs of correlation vs GOCor")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--json", help="also write the results to this file")
    p.set_defaults(fn=_bench)

    p = sub.add_parser("train", help="train a matcher on synthetic pairs")
    p.add_argument("--model", default="corr", choices=sorted(CONFIGS))
    p.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    p.add_argument("--steps", type=int, help="override the profile's number of steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run folder (last.pt is written there)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--device", help="cpu | cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=_train)

    p = sub.add_parser("evaluate", help="metrics of a checkpoint, as JSON")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split", default="standard", choices=TEST_SPLITS)
    p.add_argument("--pairs", help=".npz with source, target, flow, mask (see gocor.evaluate.load_pairs)")
    p.add_argument("--device")
    p.set_defaults(fn=_evaluate)

    from ..lab.runs.volume_experiment import LAYERS
    p = sub.add_parser("volume-experiment", help="the minimal experiment: a feature head trained through "
                       "correlation vs GOCor on near-repetitive pairs, held-out coarse accuracy")
    p.add_argument("--layers", nargs="+", default=list(LAYERS), choices=LAYERS)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, help="override the training steps")
    p.add_argument("--out", help="write every run and the summary as JSON here (the seed-0 models beside it)")
    p.add_argument("--device")
    p.set_defaults(fn=_volume_experiment)

    from ..lab.runs.variants import TABLE6, VARIANTS
    p = sub.add_parser("ablate", help="train every ablation variant over seeds (cached, resumable) and tabulate")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    p.add_argument("--only", nargs="+", default=list(TABLE6), choices=list(VARIANTS), metavar="VARIANT",
                   help=f"variants to run (default: the paper's Table 6: {' '.join(TABLE6)})")
    p.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="build/ablation", help="one folder per run, result.json in each")
    p.add_argument("--device")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=_ablate)

    p = sub.add_parser("reproduce", help="retrain the Table-6 variants (seed 0; --all: everything, hours) "
                                         "and check them against the shipped runs, then every notebook and a "
                                         "summary, into build/ (resumable)")
    p.add_argument("--out", default="build")
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="training profile (default quick: the shipped runs' profile, so they can be compared)")
    p.add_argument("--all", action="store_true", help="every variant x 3 seeds (hours on a CPU; resumable)")
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), metavar="VARIANT",
                   help="variants to run (default: the Table-6 ones; with --all every variant)")
    p.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 1; with --all 3)")
    p.add_argument("--no-ablation", action="store_true", help="only execute the notebooks (on the shipped results)")
    p.add_argument("--update", action="store_true", help="also copy the executed notebooks back into notebooks/")
    p.set_defaults(fn=_reproduce)

    from ..teach import assignments
    assignments.add_parser(sub)

    args = parser.parse_args(argv)
    from ..lab.runs.checkpoint import CheckpointError
    try:
        args.fn(args)
    except (CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except ValueError as e:
        if args.command not in ("evaluate", "train", "assignments", "ablate"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
