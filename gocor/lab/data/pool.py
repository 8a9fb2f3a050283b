"""The training pairs, generated once and shared by every run that trains on them.

Making a pair (crop, warp, objects, facades) costs about as much as a ``corr`` training step
on a CPU, so the pairs of a profile are made once, kept as uint8 images, and every run (every
variant, every seed) reads its batches from them. A batch is a pure function of (pool, seed,
step): each epoch visits the pool in an order drawn from the seed. The facade share of every
batch is exact: mixed pairs and facades are two parts of the pool with their own orders.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from ..files import torch_save
from .facades import FacadeConfig
from .images import TEXTURES, TRAIN_TEXTURES
from .pairs import PairConfig
from .splits import facade_batch, make_batch

_CHUNK = 256            # pairs made per call (bounds the float32 working memory)


TEXTURE_SETS = {"all": TEXTURES, "train": TRAIN_TEXTURES}


@dataclass(frozen=True)
class PoolConfig:
    size: int                           # pairs in the pool (mixed + facades)
    batch_size: int                     # of the batches drawn from it
    image_size: int = 64
    facade_share: float = 0.0           # share of every batch drawn from the facades
    dynamic: float = 0.0                # probability that a mixed pair has a moving object
    seed: int = 0                       # of the pairs themselves (not of the runs using them)
    translation: float = 0.0            # global shift of the mixed pairs, fraction of the size (large motion)
    textures: str = "all"               # texture families of the mixed pairs: "all", or "train" (the others held out)

    def __post_init__(self):
        if self.textures not in TEXTURE_SETS:
            raise ValueError(f"textures must be one of {tuple(TEXTURE_SETS)}, got {self.textures!r}")
        if not 0 < self.batch_size <= self.size:
            raise ValueError(f"pool of {self.size} pairs cannot serve batches of {self.batch_size}")

    @property
    def facades_per_batch(self) -> int:
        return round(self.facade_share * self.batch_size)

    @property
    def n_facades(self) -> int:
        """Facade pairs in the pool: the batch's share of it, at least one batch's worth."""
        k = self.facades_per_batch
        return 0 if k == 0 else max(k, round(self.size * k / self.batch_size))

    @property
    def key(self) -> str:
        # fields at their defaults are left out: pools made before a field existed keep their key
        fields = {k: v for k, v in asdict(self).items() if k not in _NEWER or v != _NEWER[k]}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


_NEWER = {"translation": 0.0, "textures": "all"}       # fields added after pools were first cached


def _to_uint8(img: Tensor) -> Tensor:
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def make_pool(cfg: PoolConfig) -> dict[str, Tensor]:
    """All pairs: ``source``/``target`` uint8 (N, 3, S, S), ``flow`` float32 (N, 2, S, S),
    ``mask`` bool (N, S, S); the mixed pairs first, then ``n_facades`` facades."""
    pair_cfg = PairConfig(size=cfg.image_size, dynamic=cfg.dynamic, translation=cfg.translation)
    textures = TEXTURE_SETS[cfg.textures]
    n_mixed = cfg.size - cfg.n_facades
    parts: dict[str, list[Tensor]] = {"source": [], "target": [], "flow": [], "mask": []}
    chunks = [(lambda r: make_batch(r, "train", pair_cfg, cfg.seed, textures), range(a, min(a + _CHUNK, n_mixed)))
              for a in range(0, n_mixed, _CHUNK)]
    fac_cfg = FacadeConfig(size=cfg.image_size)
    chunks += [(lambda r: facade_batch(r, "facades_train", fac_cfg, cfg.seed), range(a, min(a + _CHUNK, cfg.n_facades)))
               for a in range(0, cfg.n_facades, _CHUNK)]
    for make, indices in chunks:
        b = make(indices)
        parts["source"].append(_to_uint8(b["source"]))
        parts["target"].append(_to_uint8(b["target"]))
        parts["flow"].append(b["flow"].float())
        parts["mask"].append(b["mask"])
    return {k: torch.cat(v) for k, v in parts.items()}


@lru_cache(maxsize=2)
def _in_memory(cfg: PoolConfig) -> dict[str, Tensor]:
    return make_pool(cfg)


def load_pool(cfg: PoolConfig, cache_dir: str | Path | None = None) -> dict[str, Tensor]:
    """The pool of ``cfg``: from this process's memory, else from ``cache_dir/pool-<key>.pt``
    when given (written there the first time), else made."""
    if cache_dir is None:
        return _in_memory(cfg)
    path = Path(cache_dir) / f"pool-{cfg.key}.pt"
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    pool = _in_memory(cfg)
    torch_save(pool, path)
    return pool


def _order(n: int, seed: int, epoch: int, part: int) -> Tensor:
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 7 + part)
    return torch.randperm(n, generator=gen)


def _take(n: int, k: int, step: int, seed: int, part: int) -> Tensor:
    """Indices of the k items of ``step`` in 0..n-1, epoch after epoch in seeded orders
    (a batch may straddle two epochs)."""
    first = step * k
    pos = torch.arange(first, first + k)
    epochs, within = pos // n, pos % n
    return torch.cat([_order(n, seed, int(e), part)[within[epochs == e]] for e in epochs.unique()])


def pool_batch(pool: dict[str, Tensor], cfg: PoolConfig, step: int, seed: int,
               device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Batch ``step`` of a run with ``seed``: float images in [0, 1] on ``device``."""
    n_fac = cfg.facades_per_batch
    n_mixed_pool = cfg.size - cfg.n_facades
    idx = _take(n_mixed_pool, cfg.batch_size - n_fac, step, seed, 0)
    if n_fac:
        idx = torch.cat([idx, n_mixed_pool + _take(cfg.n_facades, n_fac, step, seed, 1)])
    out = {k: v[idx].to(device, non_blocking=True) for k, v in pool.items()}
    for k in ("source", "target"):
        out[k] = out[k].float().div_(255.0)
    return out
