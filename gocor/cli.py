"""``python -m gocor <command>``."""
from __future__ import annotations

import argparse
import json


def _bench(args) -> None:
    from .bench import format_table, run_all
    result = run_all(args.batch, args.channels)
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gocor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bench", help="time/memory/FLOPs of correlation vs GOCor")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--json", help="also write the results to this file")
    p.set_defaults(fn=_bench)
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
