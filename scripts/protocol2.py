"""Protocol v2's runs (data/results/protocol2/PROTOCOL.md), one run per call:
``python scripts/protocol2.py RUN_DIR VARIANT SEED [SPLITS] [key=value ...]`` trains (or resumes)
one run of the ``large`` profile and evaluates it. A driver can take a lock around each call."""
import sys

from gocor.lab.data.splits import HELD_OUT_SPLITS
from gocor.lab.runs.ablate import run_variant

PROTOCOL2_SPLITS = ("large_motion", "motorcycle", "large_motion_val") + HELD_OUT_SPLITS

if __name__ == "__main__":
    out, name, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    splits = tuple(sys.argv[4].split(",")) if len(sys.argv) > 4 and sys.argv[4] != "all" else PROTOCOL2_SPLITS
    changes = {k: float(v) for k, v in (a.split("=") for a in sys.argv[5:])}
    r = run_variant(name, seed, "large", out, progress=False, splits=splits, **changes)
    print(name, seed, changes, {s: round(m["aepe"], 3) for s, m in r["metrics"].items()}, r["wall_time_s"], "s", flush=True)
