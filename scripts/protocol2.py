"""Protocol v2's runs (data/results/protocol2/PROTOCOL.md), one run per call:
``python scripts/protocol2.py RUN_DIR VARIANT SEED [SPLITS] [key=value ...]`` trains (or resumes)
one run of the ``large`` profile and evaluates it. SPLITS: comma-separated split names, or ``all``
(the protocol's run splits); key=value: changes to the run's training config (e.g. ``steps=20``).
A driver can take a lock around each call."""
import argparse
import dataclasses
import sys

from gocor.lab.data.splits import check_splits
from gocor.lab.errors import UserError
from gocor.lab.runs.ablate import run_variant
from gocor.lab.runs.protocol2 import PROFILE, RUN_SPLITS
from gocor.lab.runs.train import TrainConfig


def parse(argv: list[str]) -> tuple[argparse.Namespace, tuple[str, ...], dict]:
    """The command line -> (arguments, splits, training-config changes); errors name the argument."""
    p = argparse.ArgumentParser(prog="scripts/protocol2.py", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("variant")
    p.add_argument("seed", type=int)
    p.add_argument("splits", nargs="?", default="all", help="comma-separated split names, or 'all'")
    p.add_argument("changes", nargs="*", default=[], metavar="key=value",
                   help="training-config changes, e.g. steps=20")
    args = p.parse_args(argv)
    if "=" in args.splits:                      # no SPLITS given, only changes
        args.changes.insert(0, args.splits)
        args.splits = "all"
    splits = RUN_SPLITS if args.splits == "all" else tuple(args.splits.split(","))
    try:
        check_splits(splits)
    except UserError as e:
        p.error(f"SPLITS: {e}, or all")
    fields = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    changes = {}
    for item in args.changes:
        key, sep, value = item.partition("=")
        if not sep or key not in fields or key in ("variant", "seed"):
            p.error(f"{item!r}: expected key=value with key a TrainConfig field other than variant and "
                    f"seed ({', '.join(k for k in fields if k not in ('variant', 'seed'))})")
        if fields[key] == "str":
            changes[key] = value
            continue
        try:
            changes[key] = int(value) if value.isdigit() else float(value)
        except ValueError:
            p.error(f"{item!r}: {key} takes a number")
    return args, splits, changes


if __name__ == "__main__":
    args, splits, changes = parse(sys.argv[1:])
    try:
        r = run_variant(args.variant, args.seed, PROFILE, args.run_dir, progress=False, splits=splits, **changes)
    except UserError as e:
        sys.exit(f"error: {e}")
    print(args.variant, args.seed, changes, {s: round(m["aepe"], 3) for s, m in r["metrics"].items()},
          r["wall_time_s"], "s", flush=True)
