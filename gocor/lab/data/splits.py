"""The named splits: each pair of a split is a pure function of (split, index, seed); the
held-out test splits are fixed and bit-identical across runs."""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from .facades import FacadeConfig, make_facade_pair
from .images import TEST_IMAGES, TRAIN_IMAGES
from .pairs import PairConfig, make_pair

SPLITS = {"standard": 0, "repetitive": 1, "train": 2, "val": 3, "near_repetitive": 4, "facades_train": 5,
          "dynamic": 6}
HELD_OUT_SPLITS = ("standard", "repetitive", "near_repetitive", "dynamic")
SPLIT_SIZE = 96


def _seed(split: str, index: int, seed: int) -> int:
    return (seed * 1_000_003 + SPLITS[split]) * 10_000_019 + index


def facade_batch(indices, split: str = "facades_train", cfg: FacadeConfig = FacadeConfig(),
                 seed: int = 0) -> dict[str, Tensor]:
    """Stack near-repetitive facade pairs (with their ``period``) of a split, by index."""
    pairs = [make_facade_pair(_seed(split, i, seed), cfg) for i in indices]
    return {k: torch.stack([p[k] for p in pairs]) for k in pairs[0]}


def make_batch(indices, split: str = "train", cfg: PairConfig = PairConfig(), seed: int = 0) -> dict[str, Tensor]:
    """Stack the pairs with the given indices of a split (a pure function of its arguments)."""
    repetitive = split == "repetitive"
    images = TEST_IMAGES if split in ("standard", "dynamic") else TRAIN_IMAGES
    pairs = [make_pair(_seed(split, i, seed), cfg, repetitive, images) for i in indices]
    return {k: torch.stack([p[k] for p in pairs]) for k in pairs[0]}


def held_out_split(name: str, cfg: PairConfig = PairConfig(photometric=False), n: int = SPLIT_SIZE) -> dict[str, Tensor]:
    """The fixed held-out test splits: ``standard`` (held-out images and textures, mixed warps),
    ``repetitive`` (periodic textures only), ``dynamic`` (as ``standard``, each pair with an
    independently moving object cut from a held-out image: the KITTI-like case of Table 6),
    all of ``cfg.size``, and ``near_repetitive`` (facades of :mod:`gocor.lab.data.facades`, always
    128 px, with their ``period``). Bit-identical across runs."""
    if name not in HELD_OUT_SPLITS:
        raise ValueError(f"unknown split {name!r}; choose from {HELD_OUT_SPLITS}")
    if name == "near_repetitive":
        return facade_batch(range(n), name)
    if name == "dynamic":
        cfg = replace(cfg, dynamic=1.0)
    return make_batch(range(n), name, cfg, seed=0)
