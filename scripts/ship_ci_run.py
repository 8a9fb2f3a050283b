"""Record the short training run that CI reruns (tests/test_shipped.py): a 20-step ``gocor`` run
on a small pool, its config and history -> data/results/ci/gocor-short.json (maintainers, after a
change that is meant to alter training numbers).

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

from gocor.lab.files import write_json  # noqa: E402
from gocor.lab.runs.results import commit_info  # noqa: E402
from gocor.lab.runs.train import run_config, train  # noqa: E402

RECORD = ROOT / "data" / "results" / "ci" / "gocor-short.json"
CONFIG = run_config("gocor", "ci", steps=20, val_every=10, val_pairs=8, ckpt_every=20, pool_size=96)


def main() -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(CONFIG, Path(tmp) / "run", progress=False)
    record = {"train_config": asdict(CONFIG), "history": summary["history"], **commit_info(),
              "device": summary["device"], "torch": torch.__version__}
    write_json(RECORD, record)
    print(f"{RECORD.relative_to(ROOT)}: {len(record['history'])} history entries")


if __name__ == "__main__":
    main()
