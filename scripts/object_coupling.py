"""Protocol v2's test of one mechanism behind the moving object's effect on the background: is
it the context-aware initializer's image-mean feature? For every shipped checkpoint of a variant
with that initializer (data/checkpoints/protocol2/{global_lr,global,gocor}-seed*.pt), the
background AEPE on ``dynamic`` with the object as trained, with f-bar over the background's cells
only, and without the object (gocor.lab.runs.analysis.object_coupling), into
data/results/protocol2/object_coupling.json. Checkpoints already in that file are not evaluated
again (``--again`` evaluates every one).

    python scripts/object_coupling.py [--again]
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gocor.lab.files import write_json  # noqa: E402
from gocor.lab.runs.analysis import object_coupling  # noqa: E402
from gocor.lab.runs.evaluate import load_matcher  # noqa: E402
from gocor.lab.runs.variants import parse_run_name  # noqa: E402

if __name__ == "__main__":
    path = ROOT / "data" / "results" / "protocol2" / "object_coupling.json"
    out = {} if "--again" in sys.argv[1:] or not path.exists() else json.loads(path.read_text())["runs"]
    for pt in sorted((ROOT / "data" / "checkpoints" / "protocol2").glob("*-seed*.pt")):
        variant, seed = parse_run_name(pt.stem)
        if variant in ("global_lr", "global", "gocor") and pt.stem not in out:
            out[pt.stem] = object_coupling(load_matcher(pt, "cpu")[0])
            print(pt.stem, {k: round(v, 3) for k, v in out[pt.stem].items()}, flush=True)
            write_json(path, {"runs": dict(sorted(out.items()))})      # after each checkpoint: resumable
