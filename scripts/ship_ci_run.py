"""Record the short training runs that CI reruns (tests/test_shipped.py), maintainers, after a
change that is meant to alter training numbers:

- a 20-step ``gocor`` run on a small pool, its config, history and machine -> data/results/ci/gocor-short.json;
- a 10-step ``gocor`` run of the ``ci`` profile with its loss and validation error after every
  step, and the machine it ran on -> data/results/ci/gocor-bits.json: on the same machine (torch
  version, threads, CPU capability) a change meant to leave training alone must reproduce it bit
  for bit.

    python scripts/ship_ci_run.py
"""
from __future__ import annotations

import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gocor.lab.device import machine_info  # noqa: E402
from gocor.lab.files import write_json  # noqa: E402
from gocor.lab.runs.results import commit_info  # noqa: E402
from gocor.lab.runs.train import run_config, train  # noqa: E402

RECORD = ROOT / "data" / "results" / "ci" / "gocor-short.json"
CONFIG = run_config("gocor", "ci", steps=20, val_every=10, val_pairs=8, ckpt_every=20, pool_size=96)
BITS = ROOT / "data" / "results" / "ci" / "gocor-bits.json"
BITS_CONFIG = run_config("gocor", "ci", steps=10, val_every=1, val_pairs=2, ckpt_every=10, pool_size=96)
THREADS = 2


def main() -> None:
    torch.set_num_threads(THREADS)
    for config, path in ((CONFIG, RECORD), (BITS_CONFIG, BITS)):
        with tempfile.TemporaryDirectory() as tmp:
            summary = train(config, Path(tmp) / "run", progress=False)
        record = {"train_config": asdict(config), "history": summary["history"], **commit_info(),
                  "device": summary["device"], "torch": torch.__version__, "machine": machine_info()}
        write_json(path, record)
        print(f"{path.relative_to(ROOT)}: {len(record['history'])} history entries")


if __name__ == "__main__":
    main()
