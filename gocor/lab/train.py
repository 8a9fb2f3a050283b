"""Training a matcher on synthetic pairs: ``python -m gocor train --model gocor --profile quick``.

Each batch is a pure function of (seed, step), so an interrupted run resumed from its last
checkpoint ends with exactly the weights of an uninterrupted one (on CPU).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import checkpoint
from .data import PairConfig, make_batch
from .evaluate import evaluate
from .device import default_device
from .matcher import CONFIGS, Matcher, multiscale_loss


@dataclass(frozen=True)
class TrainConfig:
    model: str = "corr"
    steps: int = 500
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_every: int = 100
    val_pairs: int = 32
    ckpt_every: int = 100
    image_size: int = 64


PROFILES = {
    "quick": TrainConfig(steps=500, batch_size=16),         # CPU, minutes
    "full": TrainConfig(steps=6000, batch_size=32, val_every=500, ckpt_every=500),   # one GPU
    "tiny": TrainConfig(steps=6, batch_size=2, val_every=3, val_pairs=2, ckpt_every=2),   # tests
}


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, device: str | None = None,
          progress: bool = True, stop_after: int | None = None) -> dict:
    """Train, writing ``out_dir/last.pt`` every ``ckpt_every`` steps and at the end.
    ``stop_after`` ends the run early (simulates an interruption). Returns a summary dict."""
    if cfg.model not in CONFIGS:
        raise ValueError(f"unknown model {cfg.model!r}; choose from {sorted(CONFIGS)}")
    device = default_device(device)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "last.pt"
    torch.manual_seed(cfg.seed)
    model = Matcher(replace(CONFIGS[cfg.model], image_size=cfg.image_size)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    start, history, elapsed = 0, [], 0.0
    if resume and ckpt_path.exists():
        state = checkpoint.load(ckpt_path, device)
        if state["train_config"] != asdict(cfg):
            raise checkpoint.CheckpointError(f"{ckpt_path}: written by another training config")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start, history, elapsed = state["step"], state["history"], state["wall_time"]
    pair_cfg = PairConfig(size=cfg.image_size)
    val = make_batch(range(cfg.val_pairs), "val", replace(pair_cfg, photometric=False), seed=cfg.seed)

    def save(step: int) -> None:
        checkpoint.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "step": step, "rng": torch.get_rng_state(),
                         "history": history, "wall_time": elapsed + time.perf_counter() - t0,
                         "train_config": asdict(cfg), "matcher_config": model.config.to_dict()}, ckpt_path)

    t0 = time.perf_counter()
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, disable=not progress,
               desc=f"train {cfg.model}", unit="step")
    for step in bar:
        model.train()
        idx = range(step * cfg.batch_size, (step + 1) * cfg.batch_size)
        batch = {k: v.to(device) for k, v in make_batch(idx, "train", pair_cfg, seed=cfg.seed).items()}
        loss = multiscale_loss(model(batch["source"], batch["target"]), batch["flow"], batch["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        done = step + 1
        if done % cfg.val_every == 0 or done == cfg.steps:
            metrics = evaluate(model, val)
            history.append({"step": done, "loss": loss.item(), "val_aepe": metrics["aepe"]})
        rate = (done - start) * cfg.batch_size / (time.perf_counter() - t0)
        bar.set_postfix(loss=f"{loss.item():.3f}", pairs_per_s=f"{rate:.0f}")
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            save(done)
    bar.close()
    return {"steps": end, "wall_time": elapsed + time.perf_counter() - t0, "device": str(device),
            "history": history, "checkpoint": str(ckpt_path)}
