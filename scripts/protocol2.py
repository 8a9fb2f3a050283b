"""Protocol v2's runs (data/results/protocol2/PROTOCOL.md), one run per call:
``python scripts/protocol2.py RUN_DIR VARIANT SEED [SPLITS] [key=value ...]`` trains (or resumes)
one run of the ``large`` profile and evaluates it. A driver can take a lock around each call."""
import sys

from gocor.lab.runs.ablate import run_variant
from gocor.lab.runs.protocol2 import PROFILE, RUN_SPLITS

if __name__ == "__main__":
    out, name, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    splits = tuple(sys.argv[4].split(",")) if len(sys.argv) > 4 and sys.argv[4] != "all" else RUN_SPLITS
    changes = {k: int(v) if v.isdigit() else float(v) for k, v in (a.split("=") for a in sys.argv[5:])}
    r = run_variant(name, seed, PROFILE, out, progress=False, splits=splits, **changes)
    print(name, seed, changes, {s: round(m["aepe"], 3) for s, m in r["metrics"].items()}, r["wall_time_s"], "s", flush=True)
