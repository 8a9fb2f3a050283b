"""Protocol v2's check that the capacity control learns: for every ``corr_post`` run of a run
folder (default build/protocol2), how far each learned 4D post-processing moves its volume
(‖V′ − V‖ / ‖V‖ on 32 ``large_motion`` pairs) and its readout's norm
(gocor.lab.runs.analysis.post_contribution), into data/results/protocol2/post_contribution.json.
A relative change near 0 means the readout never left zero and the control is plain correlation.

    python scripts/post_contribution.py [RUN_FOLDER]
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gocor.lab.files import write_json  # noqa: E402
from gocor.lab.runs.analysis import post_contribution  # noqa: E402
from gocor.lab.runs.evaluate import load_matcher  # noqa: E402

if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "protocol2"
    out = {}
    for run in sorted(src.glob("corr_post-seed*")):
        if (run / "result.json").exists():
            out[run.name] = post_contribution(load_matcher(run / "last.pt", "cpu")[0])
            print(run.name, {k: round(v, 4) for k, v in out[run.name].items()}, flush=True)
    if not out:
        sys.exit(f"no finished corr_post run in {src}")
    write_json(ROOT / "data" / "results" / "protocol2" / "post_contribution.json", {"runs": out})
