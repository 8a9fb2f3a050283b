"""Training a matcher on synthetic pairs:
``python -m gocor train --variant gocor --profile quick --run-dir runs/gocor``.

The pairs come from a pool made once per profile (:mod:`gocor.lab.pool`) and shared by every
run; each batch is a pure function of (pool, seed, step), so an interrupted run resumed from
its last checkpoint ends with exactly the weights of an uninterrupted one (on CPU).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ...module import gocor_modules
from ..data.pairs import PairConfig
from ..data.pool import TEXTURE_SETS, PoolConfig, load_pool, pool_batch
from ..data.splits import make_batch
from ..device import default_device
from ..models.matcher import Matcher, MatcherConfig, multiscale_loss
from ..models.parameters import objective_parameters, param_groups
from ..errors import UserError
from . import checkpoint
from .evaluate import evaluate
from .variants import variant


@dataclass(frozen=True)
class TrainConfig:
    variant: str = "corr"               # a key of gocor.lab.runs.variants.VARIANTS
    steps: int = 500
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_every: int = 100
    val_pairs: int = 32
    ckpt_every: int = 100
    image_size: int = 64
    objective_lr_scale: float = 10.0    # GOCor's objective parameters: this × lr, no weight decay (0: frozen)
    facade_share: float = 0.0           # share of each batch drawn from near-repetitive facades
    dynamic: float = 0.0                # probability that a mixed pair has an independently moving object
    pool_size: int = 96                 # distinct training pairs (made once, shared by all runs)
    translation: float = 0.0            # global shift of the mixed pairs, up to this fraction of the size
    textures: str = "all"               # texture families of the mixed pairs: "all" | "train" (others held out)

    @property
    def pool(self) -> PoolConfig:
        return PoolConfig(size=self.pool_size, batch_size=self.batch_size, image_size=self.image_size,
                          facade_share=self.facade_share, dynamic=self.dynamic, translation=self.translation,
                          textures=self.textures)

    @property
    def val_pairs_config(self) -> PairConfig:
        """The validation pairs' config: the training mix's pairs without photometric jitter."""
        return PairConfig(size=self.image_size, photometric=False, dynamic=self.dynamic,
                          translation=self.translation)


def recorded_config(recorded: dict) -> dict:
    """A run's recorded ``train_config`` with the fields added since it was written at their
    defaults (which reproduce what the code did before them), for comparing with ``asdict(cfg)``."""
    return {**asdict(TrainConfig()), **recorded} if set(recorded) <= set(asdict(TrainConfig())) else recorded


PROFILES = {
    # CPU, minutes: every pair seen once
    "quick": TrainConfig(steps=500, batch_size=16, facade_share=0.25, dynamic=0.5, pool_size=8000),
    # one GPU: 8 epochs over 24000 pairs
    "full": TrainConfig(steps=6000, batch_size=32, val_every=500, ckpt_every=500, facade_share=0.25,
                        dynamic=0.5, pool_size=24000),
    # protocol v2 (CPU): the quick budget on a mix where the global level is needed. Large global
    # shifts (most pixels move more than one 8 px global cell), texture families dots/hexagons
    # held out, fewer moving objects. Fixed before any run of it; the objective's learning-rate
    # scale is chosen on large_motion_val (gocor, seed 0), see data/results/protocol2/PROTOCOL.md
    "large": TrainConfig(steps=500, batch_size=16, facade_share=0.25, dynamic=0.25, pool_size=8000,
                         translation=0.3, textures="train"),
    # notebook 05's live run in CI: the quick mix on a small pool
    "ci": TrainConfig(steps=60, batch_size=8, val_every=10, val_pairs=16, ckpt_every=20, facade_share=0.25,
                      dynamic=0.5, pool_size=480),
    # tests
    "tiny": TrainConfig(steps=6, batch_size=2, val_every=3, val_pairs=2, ckpt_every=2, pool_size=12),
}


def run_config(name: str, profile: str = "quick", seed: int = 0, **changes) -> TrainConfig:
    """The training config of variant ``name`` under ``profile``: the profile, the variant's own
    training changes (e.g. the frozen objective), then ``changes`` (e.g. ``steps``)."""
    if profile not in PROFILES:
        raise UserError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    return replace(PROFILES[profile], variant=name, seed=seed, **variant(name).train, **changes)


def matcher_config(name: str, image_size: int = 64) -> MatcherConfig:
    """The matcher of variant ``name`` for training images of ``image_size``."""
    return MatcherConfig.build(**variant(name).matcher_fields(), image_size=image_size)


def training_batch(cfg: TrainConfig, step: int, pool: dict[str, torch.Tensor] | None = None,
                   device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Batch ``step`` of a run (a pure function of the config and the step): mixed pairs, and the
    last ``round(facade_share · batch_size)`` near-repetitive facades, from the config's pool."""
    return pool_batch(load_pool(cfg.pool) if pool is None else pool, cfg.pool, step, cfg.seed, device)


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, device: str | None = None,
          progress: bool = True, stop_after: int | None = None, pool_cache: str | Path | None = None) -> dict:
    """Train, writing ``out_dir/last.pt`` every ``ckpt_every`` steps and at the end.
    ``stop_after`` ends the run early (simulates an interruption); the training pairs are kept
    in ``pool_cache`` when given (see :func:`gocor.lab.data.pool.load_pool`). Returns a summary
    dict. ``cfg`` must carry its variant's training changes (:func:`run_config` adds them)."""
    for key, value in variant(cfg.variant).train.items():
        if getattr(cfg, key) != value:
            raise UserError(f"variant {cfg.variant!r} trains with {key}={value!r}, the config has "
                            f"{getattr(cfg, key)!r}; build it with run_config()")
    device = default_device(device)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "last.pt"
    torch.manual_seed(cfg.seed)
    model = Matcher(matcher_config(cfg.variant, cfg.image_size)).to(device)
    if cfg.objective_lr_scale == 0.0:
        # a frozen objective (the gocor_frozen variant): one way to freeze, the layer's own; the
        # same parameters as AdamW at lr 0 (measured bit-identical), without their gradients
        for m in gocor_modules(model).values():
            m.freeze_objective()
    opt = torch.optim.AdamW(param_groups(model, objective_parameters(model), cfg.lr, cfg.objective_lr_scale),
                            lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    start, history, elapsed = 0, [], 0.0
    if resume and ckpt_path.exists():
        state = checkpoint.load(ckpt_path, device)
        if recorded_config(state["train_config"]) != asdict(cfg):
            raise checkpoint.CheckpointError(f"{ckpt_path}: written by another training config")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start, history, elapsed = state["step"], state["history"], state["wall_time"]
    pool = load_pool(cfg.pool, pool_cache)
    val = make_batch(range(cfg.val_pairs), "val", cfg.val_pairs_config, seed=cfg.seed,
                     textures=TEXTURE_SETS[cfg.textures])

    def save(step: int) -> None:
        checkpoint.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "step": step, "rng": torch.get_rng_state(),
                         "history": history, "wall_time": elapsed + time.perf_counter() - t0,
                         "train_config": asdict(cfg), "matcher_config": model.config.to_dict()}, ckpt_path)

    t0 = time.perf_counter()
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, disable=not progress,
               desc=f"train {cfg.variant}", unit="step")
    for step in bar:
        model.train()
        batch = training_batch(cfg, step, pool, device)
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
    if cfg.steps == 0 and start == 0:
        save(0)                         # no training: the initial model is the run's result
    return {"steps": end, "wall_time": elapsed + time.perf_counter() - t0, "device": str(device),
            "history": history, "checkpoint": str(ckpt_path)}
