"""``make gpu-check``: everything that needs a GPU, in one command, one JSON (default build/gpu_check.json).

1. the CUDA variants of the tests (``pytest -k cuda``: the ``device``-parametrized tests on CUDA);
2. the benchmark on CUDA (every layer case, forward + backward, one subprocess each);
3. a ``full``-profile training step of ``corr`` and ``gocor``, in float32 and under bf16 autocast
   (a variant that fails under autocast is recorded with its error, not dropped).

Each part runs in a subprocess with its own time limit (together under 8 minutes); a part that
fails or runs out of time is recorded as such and the others still run. Without CUDA it stops at
once with exit status 2 and says so.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
LIMITS_S = {"tests": 180, "bench": 150, "train_steps": 120}


def _run(code_or_cmd: list[str], limit: int) -> dict:
    t0 = time.perf_counter()
    try:
        out = subprocess.run(code_or_cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as e:
        return {"ok": False, "error": f"ran past its {limit} s limit", "seconds": round(time.perf_counter() - t0, 1),
                "tail": (e.stdout or b"")[-2000:].decode() if isinstance(e.stdout, bytes) else (e.stdout or "")[-2000:]}
    result = {"ok": out.returncode == 0, "returncode": out.returncode, "seconds": round(time.perf_counter() - t0, 1)}
    if out.returncode != 0:
        result["tail"] = (out.stdout + out.stderr)[-2000:]
    return result | {"stdout": out.stdout}


def _python(code: str, limit: int) -> dict:
    r = _run([sys.executable, "-c", code], limit)
    if r["ok"]:
        r["result"] = json.loads(r.pop("stdout").strip().splitlines()[-1])
    return r


TRAIN_STEPS = """
import json, torch
from gocor.tools.bench import run_matcher_case
rows = []
for model in ("corr", "gocor"):
    for cast in (None, torch.bfloat16):
        try:
            rows.append(run_matcher_case(model, "full", repeats=5, warmup=2, autocast=cast))
        except Exception as e:   # autocast support is the layer's to add: record what happens
            rows.append({"case": f"train step {model}", "autocast": str(cast), "error": f"{type(e).__name__}: {e}"})
print(json.dumps(rows))
"""

BENCH = """
import json, subprocess, sys
from gocor.tools.bench import CASES
rows = []
for name in CASES:
    out = subprocess.run([sys.executable, "-c", "import json; from gocor.tools.bench import run_case; "
                          f"print(json.dumps(run_case({name!r})))"], capture_output=True, text=True)
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0
                else {"case": name, "error": out.stderr[-500:]})
print(json.dumps(rows))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "build" / "gpu_check.json")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device is visible to torch (torch.cuda.is_available() is False); "
              f"this torch is {torch.__version__}. Run it on a machine with an NVIDIA GPU and a CUDA build "
              "of torch; nothing was measured.", file=sys.stderr)
        return 2
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "cuda": torch.version.cuda, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tests = _run([sys.executable, "-m", "pytest", "-q", "-k", "cuda", "tests"], LIMITS_S["tests"])
    tests["summary"] = tests.pop("stdout", "").strip().splitlines()[-1:] or ["(no output)"]
    report["tests"] = tests
    report["bench"] = _python(BENCH, LIMITS_S["bench"])
    report["train_steps"] = _python(TRAIN_STEPS, LIMITS_S["train_steps"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(args.out)
    print(f"gpu-check on {report['device']}: written to {args.out}")
    return 0 if all(report[k].get("ok") for k in ("tests", "bench", "train_steps")) else 1


if __name__ == "__main__":
    sys.exit(main())
