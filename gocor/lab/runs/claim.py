"""The paper's claim in a controlled experiment: features frozen, only the layer trained.

The claim: a GOCor volume tells apart similar regions that the correlation layer confuses. Here
the features are *fixed* (three extractors that differ in kind), so any difference between layers
is the layer's own; the data are near-repetitive facades (:mod:`gocor.lab.data.facades`) whose
copies differ by a *dose* of their distinguishing cues (brightness, pane tint, curtain height, the
wall's shading): at dose 0 the copies are identical and no layer can tell them apart; the
question is where, between 0 and 2× the default differences, GOCor gains.

- extractors: ``random`` (a small conv head at a fixed random initialization), ``matcher`` (the
  1/8 features of the shipped correlation matcher, ``data/checkpoints/corr.pt``), ``pixels``
  (each 8×8 patch of the normalized image, at half resolution, as a 48-vector minus its mean);
- layers: ``corr`` (correlation, nothing to train), ``gocor_init`` (GlobalGOCor at its initial
  objective, not trained), ``gocor`` (GlobalGOCor with its objective and initializer trained on
  training facades of the same dose: cross-entropy of softmax(β · volume) against the true cell);
- metrics on held-out facades of the test dose, 16×16 global grid: ``coarse_acc`` (argmax on the
  true cell) and ``true_beats_copies`` (the true cell scores above every copy), each with its
  chance level, and both per pair for the statistics;
- the cue mismatch: trained on one cue alone, tested on another alone (and on the same one).

Seeds vary the training facades and the batch order; ``corr`` and ``gocor_init`` do not train and
are the same for every seed. The budget and learning rates are those of the volume experiment,
fixed before these runs; nothing here was chosen on a test result.

    python -m gocor.lab.runs.claim --out data/results/claim/results.json [--seeds 5]
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ...correlation import global_correlation
from ...module import GlobalGOCor
from ..data.facades import CUES, FacadeConfig
from ..data.splits import facade_batch
from ..models.channels import normalize_channels
from ..models.parameters import param_groups
from .metrics import coarse_chance, coarse_outcomes, true_vs_copies
from .volume_experiment import FeatureHead, volume_loss

EXTRACTORS = ("random", "matcher", "pixels")
LAYERS = ("corr", "gocor_init", "gocor")
DOSES = (0.0, 0.5, 1.0, 2.0)
ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class ClaimConfig:
    extractor: str = "random"
    layer: str = "gocor"
    dose: float = 1.0                   # train and test facades' cue dose (see FacadeConfig.scaled)
    train_cues: tuple[str, ...] = CUES  # the cues present in training facades
    test_cues: tuple[str, ...] = CUES   # ... and in test facades
    seed: int = 0
    steps: int = 150
    batch_size: int = 8
    train_pairs: int = 128
    test_pairs: int = 96
    lr: float = 2e-3
    objective_lr_scale: float = 10.0    # the objective's parameters and β, as in the volume experiment

    def __post_init__(self):
        if self.extractor not in EXTRACTORS:
            raise ValueError(f"extractor: expected one of {EXTRACTORS}, got {self.extractor!r}")
        if self.layer not in LAYERS:
            raise ValueError(f"layer: expected one of {LAYERS}, got {self.layer!r}")


@lru_cache(maxsize=1)
def _matcher_backbone():
    from .evaluate import load_matcher
    model, _ = load_matcher(ROOT / "data" / "checkpoints" / "corr.pt", "cpu")
    return model


@torch.no_grad()
def features(extractor: str, images: Tensor) -> Tensor:
    """Frozen features (N, C, H/8, W/8), L2-normalized over C, of images (N, 3, H, W)."""
    out = []
    for img in images.split(32):
        if extractor == "random":
            torch.manual_seed(2020)                       # one fixed random head for every run
            out.append(FeatureHead(32)(img))
        elif extractor == "matcher":
            model = _matcher_backbone()
            out.append(normalize_channels(model.features(model._normalize(img))[2]))
        else:
            x = F.avg_pool2d((img - 0.45) / 0.25, 2)
            patches = F.unfold(x, 4, stride=4)            # (n, 48, cells): each 8x8 patch at half resolution
            patches = patches - patches.mean(1, keepdim=True)
            out.append(normalize_channels(patches.view(len(img), -1, img.shape[-2] // 8, img.shape[-1] // 8)))
    return torch.cat(out)


@lru_cache(maxsize=16)
def _data(extractor: str, split: str, n: int, dose: float, cues: tuple[str, ...], seed: int) -> dict[str, Tensor]:
    pairs = facade_batch(range(n), split, FacadeConfig().scaled(dose, cues), seed=seed)
    return {"ref": features(extractor, pairs["target"]), "query": features(extractor, pairs["source"]),
            "flow": pairs["flow"], "mask": pairs["mask"], "period": pairs["period"]}


def per_pair(volume: Tensor, data: dict[str, Tensor]) -> dict[str, list[float]]:
    """coarse_acc and true_beats_copies of each pair (NaN where a pair has no valid cell / copy)."""
    out = coarse_outcomes(volume, data["flow"], data["mask"], data["period"])
    valid = out["valid"].flatten(1)
    acc = (out["exact"].flatten(1) & valid).sum(1) / valid.sum(1).clamp_min(1)
    acc = torch.where(valid.any(1), acc.double(), torch.nan)
    tvc = []
    for i in range(len(volume)):
        try:
            tvc.append(true_vs_copies(volume[i:i + 1], data["flow"][i:i + 1], data["mask"][i:i + 1],
                                      data["period"][i:i + 1])["true_beats_copies"])
        except ValueError:
            tvc.append(float("nan"))
    return {"coarse_acc": [round(float(a), 6) for a in acc], "true_beats_copies": [round(t, 6) for t in tvc]}


def run(cfg: ClaimConfig) -> dict:
    """Train (``gocor``) or just apply (``corr``, ``gocor_init``) one layer on frozen features
    and evaluate it on the held-out facades of the test cues."""
    test = _data(cfg.extractor, "near_repetitive", cfg.test_pairs, cfg.dose, cfg.test_cues, 0)
    channels = test["ref"].shape[1]
    torch.manual_seed(cfg.seed)
    layer = GlobalGOCor(channels) if cfg.layer != "corr" else None
    log_beta = torch.nn.Parameter(torch.tensor(2.3))
    t0, history = time.perf_counter(), []
    if cfg.layer == "gocor":
        pool = _data(cfg.extractor, "facades_train", cfg.train_pairs, cfg.dose, cfg.train_cues, cfg.seed)
        fast = [log_beta] + layer.objective_parameters()
        holder = torch.nn.ModuleDict({"layer": layer})
        holder.register_parameter("log_beta", log_beta)
        opt = torch.optim.Adam(param_groups(holder, fast, cfg.lr, cfg.objective_lr_scale), lr=cfg.lr)
        gen = torch.Generator().manual_seed(cfg.seed)
        for _ in range(cfg.steps):
            idx = torch.randint(cfg.train_pairs, (cfg.batch_size,), generator=gen)
            loss = volume_loss(layer(pool["ref"][idx], pool["query"][idx]), log_beta, pool["flow"][idx], pool["mask"][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(round(loss.item(), 4))
    with torch.no_grad():
        vols = []
        for i in range(0, cfg.test_pairs, 32):
            r, q = test["ref"][i:i + 32], test["query"][i:i + 32]
            vols.append(layer(r, q) if layer is not None else global_correlation(r, q))
        volume = torch.cat(vols)
    pairs = per_pair(volume, test)
    chance = coarse_chance(test["flow"], test["mask"], volume.shape[-1], test["period"])
    tvc = true_vs_copies(volume, test["flow"], test["mask"], test["period"])
    outcomes = coarse_outcomes(volume, test["flow"], test["mask"], test["period"])
    metrics = {"coarse_acc": outcomes["exact"][outcomes["valid"]].float().mean().item(),
               "chance_coarse_acc": chance["chance_coarse_acc"], **tvc}
    return {"config": asdict(cfg), "metrics": metrics, "per_pair": pairs, "history": history,
            "wall_time_s": round(time.perf_counter() - t0, 1)}


def plan(seeds: int = 5) -> list[ClaimConfig]:
    """Every run of the experiment: the dose-response (each extractor × dose; corr and gocor_init
    once, gocor per seed) and the cue mismatch (random head, dose 2: trained on the tint alone,
    tested on the curtain alone or on the tint alone)."""
    cfgs = []
    for extractor in EXTRACTORS:
        for dose in DOSES:
            base = ClaimConfig(extractor=extractor, dose=dose)
            cfgs += [replace(base, layer="corr"), replace(base, layer="gocor_init")]
            cfgs += [replace(base, layer="gocor", seed=s) for s in range(seeds)]
    for test_cue in ("tint", "curtain"):
        base = ClaimConfig(extractor="random", dose=2.0, train_cues=("tint",), test_cues=(test_cue,))
        cfgs += [replace(base, layer="corr"), replace(base, layer="gocor_init")]
        cfgs += [replace(base, layer="gocor", seed=s) for s in range(seeds)]
    return cfgs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="results JSON (written atomically at the end)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = []
    cfgs = plan(args.seeds)
    for i, cfg in enumerate(cfgs):
        r = run(cfg)
        results.append(r)
        print(f"[{i + 1}/{len(cfgs)}] {cfg.extractor:7s} dose {cfg.dose:.1f} {cfg.layer:10s} seed {cfg.seed} "
              f"train {','.join(cfg.train_cues)} test {','.join(cfg.test_cues)}: coarse_acc "
              f"{r['metrics']['coarse_acc']:.3f} true>copies {r['metrics']['true_beats_copies']:.3f} "
              f"({r['wall_time_s']} s)", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    import subprocess
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    tmp.write_text(json.dumps({"commit": commit, "torch": torch.__version__, "threads": torch.get_num_threads(),
                               "runs": results}, allow_nan=True) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()


def summarize(results: dict) -> str:
    """Markdown: per extractor × dose (and the cue mismatch), each layer's metrics (gocor: mean
    over seeds) and gocor − corr with a hierarchical bootstrap 95% interval over seeds and test
    pairs (corr does not train: the same for every seed)."""
    import numpy as np

    from .stats import hierarchical_bootstrap
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in results["runs"]:
        c = r["config"]
        groups.setdefault((c["extractor"], c["dose"], tuple(c["train_cues"]), tuple(c["test_cues"])), {}) \
            .setdefault(c["layer"], []).append(r)
    lines = ["| features | dose | train → test cues | metric | corr | gocor_init | gocor (seeds) | gocor − corr (95% CI) |",
             "|---|---:|---|---|---:|---:|---:|---:|"]
    for (extractor, dose, train, test), g in groups.items():
        base, init, runs = g["corr"][0], g["gocor_init"][0], g["gocor"]
        cues = "all" if train == test == CUES else f"{'+'.join(train)} → {'+'.join(test)}"
        for m in ("coarse_acc", "true_beats_copies"):
            a = np.array([base["per_pair"][m]] * len(runs), dtype=float)
            b = np.array([r["per_pair"][m] for r in runs], dtype=float)
            ok = ~np.isnan(a).any(0) & ~np.isnan(b).any(0)
            d = hierarchical_bootstrap(a[:, ok], b[:, ok], n_boot=2000)
            mean = sum(r["metrics"][m] for r in runs) / len(runs)
            lines.append(f"| {extractor} | {dose:g} | {cues} | {m} | {base['metrics'][m]:.3f} | "
                         f"{init['metrics'][m]:.3f} | {mean:.3f} ({len(runs)}) | {d.fmt(3)} |")
    return "\n".join(lines)
