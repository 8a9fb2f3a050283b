"""Bring shipped run results and manifests to the one run schema (gocor.lab.runs.results),
values unchanged. Idempotent: records already in the schema are left as they are.

    python scripts/migrate_results.py

- data/results/ablation/<variant>-seed<S>.json: + ``schema``, ``dirty`` (unknown: None);
  ``train_config.model`` (the old matcher-config name) -> ``train_config.variant``;
- data/results/matchers.json (a list, ``model`` / ``test_metrics``) -> one record per run in
  data/results/matchers/<variant>-seed<S>.json (``variant`` / ``metrics``; ``commit`` without
  its ``-dirty`` suffix and ``dirty`` from it); its extra keys (command, steps, ...) are kept;
  their metrics stay rounded to 4 digits, as ``metrics_digits: 4`` says;
- the checkpoint manifests data/checkpoints/*.json and data/checkpoints/ablation/*.json: the
  same changes;
- the recorded CI run data/results/ci/*.json: ``train_config.model`` -> ``train_config.variant``.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gocor.lab.files import write_json  # noqa: E402
from gocor.lab.runs.results import SCHEMA  # noqa: E402
from gocor.lab.runs.variants import run_name  # noqa: E402


def migrate(record: dict) -> dict:
    """One record (result or manifest) in the run schema; unchanged when it already is."""
    if record.get("schema") == SCHEMA:
        return record
    r = dict(record)
    name = r.pop("model", None) or r["variant"]
    if "test_metrics" in r:
        r["metrics"] = r.pop("test_metrics")
        r["metrics_digits"] = 4             # the old matcher records rounded their metrics to 4 digits
    commit = r.get("commit", "unknown")
    dirty = commit.endswith("-dirty") if "model" in record else r.get("dirty")
    profile = r.get("profile")
    if profile is None and "command" in r:
        profile = re.search(r"--profile (\S+)", r["command"]).group(1)
    tc = {("variant" if k == "model" else k): (name if k == "model" else v) for k, v in r["train_config"].items()}
    out = {"schema": SCHEMA, "variant": name, "seed": r["seed"], "profile": profile, "train_config": tc}
    out.update({k: v for k, v in r.items() if k not in out and k not in ("commit", "dirty")})
    out.update({"commit": commit.removesuffix("-dirty"), "dirty": dirty})
    return out


def main() -> None:
    data = ROOT / "data"
    for path in sorted((data / "results" / "ablation").glob("*-seed*.json")) + \
            sorted((data / "checkpoints").glob("*.json")) + sorted((data / "checkpoints" / "ablation").glob("*.json")):
        old = json.loads(path.read_text())
        new = migrate(old)
        if new is not old:
            write_json(path, new)
            print(f"migrated {path.relative_to(ROOT)}")
    for path in sorted((data / "results" / "ci").glob("*.json")):
        record = json.loads(path.read_text())
        if "model" in record["train_config"]:
            record["train_config"] = {("variant" if k == "model" else k): v for k, v in record["train_config"].items()}
            write_json(path, record)
            print(f"migrated {path.relative_to(ROOT)}")
    flat = data / "results" / "matchers.json"
    if flat.exists():
        for record in json.loads(flat.read_text()):
            new = migrate(record)
            path = data / "results" / "matchers" / f"{run_name(new['variant'], new['seed'])}.json"
            write_json(path, new)
            print(f"{flat.relative_to(ROOT)} -> {path.relative_to(ROOT)}")
        flat.unlink()           # the file this script replaced by the folder above (kept in git history)


if __name__ == "__main__":
    main()
