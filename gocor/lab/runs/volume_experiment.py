"""The minimal learning experiment behind the paper's claim, in CPU seconds.

A small feature head (3 strided convs, 1/8 resolution) is trained end to end through one global
layer on near-repetitive facade pairs (:mod:`gocor.lab.data.facades`), with a loss on the global
volume alone: cross-entropy of softmax(β · volume) over query cells against the true cell.
The layer is the only thing that changes between variants:

- ``corr``: the feature correlation layer;
- ``gocor``: GlobalGOCor with the paper's defaults, its objective learned;
- ``gocor_frozen``: the same, with the objective (y, v⁺, m, λ, step length, prior) frozen at
  its initial values (only the features and the initializer learn).

Same data (one training pool, generated once), same head, same budget and seeds for all.
Evaluated on the held-out ``near_repetitive`` split: coarse argmax accuracy and copy rate.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ...correlation import global_correlation
from ...module import GlobalGOCor
from ..data.splits import facade_batch, held_out_split
from ..device import batched, default_device
from ..models.channels import normalize_channels
from ..models.parameters import param_groups
from . import checkpoint
from .metrics import coarse_metrics, coarse_truth
from .stats import mean_std

Layer = Literal["corr", "gocor", "gocor_frozen"]
LAYERS: tuple[Layer, ...] = ("corr", "gocor", "gocor_frozen")


@dataclass(frozen=True)
class VolumeExperimentConfig:
    layer: Layer = "gocor"
    seed: int = 0
    steps: int = 300
    batch_size: int = 8
    train_pairs: int = 256              # the training pool, shared by every run
    test_pairs: int = 96                # of the held-out near_repetitive split
    channels: int = 32
    gocor_steps: int = 3
    lr: float = 2e-3
    objective_lr_scale: float = 10.0    # the objective's parameters (and β) learn this much faster


class FeatureHead(nn.Module):
    """(B, 3, H, W) -> L2-normalized features (B, C, H/8, W/8)."""

    def __init__(self, channels: int):
        super().__init__()
        act = nn.LeakyReLU(0.1)
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), act, nn.Conv2d(16, 32, 3, 2, 1), act,
                                 nn.Conv2d(32, 32, 3, 2, 1), act, nn.Conv2d(32, channels, 3, 1, 1))

    def forward(self, img: Tensor) -> Tensor:
        return normalize_channels(self.net((img - 0.45) / 0.25))


class VolumeModel(nn.Module):
    """Feature head + one global layer: (source, target) -> global volume (B, g·g, g, g),
    target = reference, source = query, as in the matcher."""

    def __init__(self, cfg: VolumeExperimentConfig):
        super().__init__()
        self.head = FeatureHead(cfg.channels)
        self.gocor = GlobalGOCor(cfg.channels, num_iter=cfg.gocor_steps) if cfg.layer != "corr" else None
        self.log_beta = nn.Parameter(torch.tensor(2.3))          # softmax temperature, learned
        if cfg.layer == "gocor_frozen":
            self.gocor.freeze_objective()

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        ref, query = self.head(target), self.head(source)
        return self.gocor(ref, query) if self.gocor is not None else global_correlation(ref, query)


def volume_loss(volume: Tensor, log_beta: Tensor, flow: Tensor, mask: Tensor) -> Tensor:
    """Cross-entropy of softmax(β · volume) over query cells against the true cell, mean over
    valid reference cells."""
    g = volume.shape[-1]
    pos, valid = coarse_truth(flow, mask, g)
    cell = pos.round().clamp(0, g - 1).long()
    target = cell[:, 1] * g + cell[:, 0]
    ce = F.cross_entropy(log_beta.exp() * volume, target, reduction="none")
    return ce[valid].mean()


@lru_cache(maxsize=2)
def _pool(n: int) -> dict[str, Tensor]:
    return facade_batch(range(n), "facades_train")


@lru_cache(maxsize=2)
def _test(n: int) -> dict[str, Tensor]:
    return held_out_split("near_repetitive", n=n)


def objective_state(model: VolumeModel) -> dict[str, list[float]] | None:
    """The learned objective's parameters, as lists (None for the correlation layer)."""
    if model.gocor is None:
        return None
    opt = model.gocor.solver                # the raw parameters (θ_λ signed, as stored)
    return {"label": opt.labels.label.tolist(), "weight": opt.labels.weight.tolist(),
            "mask": opt.labels.mask.tolist(), "filter_reg": opt.filter_reg.item(),
            "step_length": opt.log_step_length.exp().item()}


def run(cfg: VolumeExperimentConfig, device: str | torch.device | None = None,
        save_to: str | Path | None = None) -> dict:
    """Train one variant and evaluate it; returns config, metrics, objective, history, time.
    With ``save_to``, the trained model is saved there (:func:`load_volume_model` reads it)."""
    device = default_device(device)
    pool, test = _pool(cfg.train_pairs), _test(cfg.test_pairs)
    torch.manual_seed(cfg.seed)
    model = VolumeModel(cfg).to(device)
    # the objective's parameters and the temperature are O(1) scalars that must move by O(1):
    # with Adam's per-step move of about lr they get a faster learning rate (the same for all)
    fast = [model.log_beta] + (model.gocor.objective_parameters() if model.gocor is not None else [])
    opt = torch.optim.Adam(param_groups(model, fast, cfg.lr, cfg.objective_lr_scale), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    history, t0 = [], time.perf_counter()
    for step in range(cfg.steps):
        idx = torch.randint(len(pool["source"]), (cfg.batch_size,), generator=gen)
        b = {k: v[idx].to(device) for k, v in pool.items()}
        loss = volume_loss(model(b["source"], b["target"]), model.log_beta, b["flow"], b["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(round(loss.item(), 4))
    wall = time.perf_counter() - t0
    metrics = evaluate_volume_model(model, test)
    if save_to is not None:
        checkpoint.save({"model": model.state_dict(), "volume_config": asdict(cfg)}, save_to)
    return {"config": asdict(cfg), "metrics": metrics, "objective": objective_state(model),
            "history": history, "wall_time_s": round(wall, 1), "device": str(device)}


def load_volume_model(path: str | Path, device: str | torch.device = "cpu") -> VolumeModel:
    """A model saved by :func:`run` (eval mode)."""
    obj = checkpoint.load(path, device)
    model = VolumeModel(VolumeExperimentConfig(**obj["volume_config"]))
    model.load_state_dict(obj["model"])
    return model.to(device).eval()


@torch.no_grad()
def evaluate_volume_model(model: VolumeModel, pairs: dict[str, Tensor], batch_size: int = 32) -> dict[str, float]:
    model.eval()
    vol = torch.cat(batched(model, pairs["source"], pairs["target"], next(model.parameters()).device, batch_size))
    model.train()
    return coarse_metrics(vol, pairs["flow"], pairs["mask"], pairs["period"])


def run_all(cfg: VolumeExperimentConfig = VolumeExperimentConfig(), layers: tuple[Layer, ...] = LAYERS,
            seeds: int = 3, device: str | torch.device | None = None, progress: bool = True,
            save_dir: str | Path | None = None) -> list[dict]:
    """Every layer × seeds 0..seeds-1 with the same data and budget; with ``save_dir``, the
    seed-0 models are saved there as ``<layer>-seed0.pt``."""
    results = []
    for layer in layers:
        for seed in range(seeds):
            save_to = Path(save_dir) / f"{layer}-seed{seed}.pt" if save_dir is not None and seed == 0 else None
            r = run(replace(cfg, layer=layer, seed=seed), device, save_to)
            if progress:
                m = r["metrics"]
                print(f"{layer:13s} seed {seed}: coarse_acc {m['coarse_acc']:.3f}, copy_rate "
                      f"{m['copy_rate']:.3f} ({r['wall_time_s']} s)", flush=True)
            results.append(r)
    return results


def summarize(results: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """{layer: {metric: (mean, std over seeds)}}."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for layer in dict.fromkeys(r["config"]["layer"] for r in results):
        runs = [r["metrics"] for r in results if r["config"]["layer"] == layer]
        out[layer] = {}
        for key in ("coarse_acc", "coarse_acc1", "copy_rate"):
            out[layer][key] = mean_std([m[key] for m in runs])
    return out
