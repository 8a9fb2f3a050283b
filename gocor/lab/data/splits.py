"""The named splits: each pair of a split is a pure function of (split, index, seed); the
held-out test splits are fixed and bit-identical across runs."""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from ..errors import UserError
from .facades import FacadeConfig, make_facade_pair
from .images import (LARGE_MOTION_TEST_IMAGES, TEST_IMAGES, TEST_TEXTURES, TEXTURES, TRAIN_IMAGES,
                     TRAIN_TEXTURES)
from .pairs import PairConfig, make_pair
from .real import motorcycle_batch

SPLITS = {"standard": 0, "repetitive": 1, "train": 2, "val": 3, "near_repetitive": 4, "facades_train": 5,
          "dynamic": 6, "large_motion": 7, "large_motion_val": 8}
HELD_OUT_SPLITS = ("standard", "repetitive", "near_repetitive", "dynamic")    # every ablation run's test set
# larger splits, not (yet) in the runs' test set: large motion, where the global level is needed
# (held-out pictures), its validation twin (training pictures, for choices), and real stereo pairs
MORE_SPLITS = ("large_motion", "large_motion_val", "motorcycle", "dynamic_without_objects")
TEST_SPLITS = HELD_OUT_SPLITS + MORE_SPLITS


def check_splits(names) -> None:
    """A :class:`UserError` naming the first of ``names`` that is not an evaluation split."""
    for name in names:
        if name not in TEST_SPLITS:
            raise UserError(f"unknown split {name!r}; choose from {', '.join(TEST_SPLITS)}")
SPLIT_SIZE = 96
MORE_SPLIT_SIZE = 320
# the pictures and texture families each split draws from (others: training pictures, all families)
SPLIT_SOURCES = {
    "standard": (TEST_IMAGES, TEXTURES), "dynamic": (TEST_IMAGES, TEXTURES),
    "large_motion": (LARGE_MOTION_TEST_IMAGES, TEST_TEXTURES),     # pictures and families held out
    "large_motion_val": (TRAIN_IMAGES, TRAIN_TEXTURES),             # what the large-motion mix trains on
}
LARGE_TRANSLATION = 0.3         # ± 19 px at 64 px: most pixels move more than one 8 px global cell


def _seed(split: str, index: int, seed: int) -> int:
    return (seed * 1_000_003 + SPLITS[split]) * 10_000_019 + index


def facade_batch(indices, split: str = "facades_train", cfg: FacadeConfig = FacadeConfig(),
                 seed: int = 0) -> dict[str, Tensor]:
    """Stack near-repetitive facade pairs (with their ``period``) of a split, by index."""
    pairs = [make_facade_pair(_seed(split, i, seed), cfg) for i in indices]
    return {k: torch.stack([p[k] for p in pairs]) for k in pairs[0]}


def make_batch(indices, split: str = "train", cfg: PairConfig = PairConfig(), seed: int = 0,
               textures: tuple[str, ...] | None = None) -> dict[str, Tensor]:
    """Stack the pairs with the given indices of a split (a pure function of its arguments), from
    the split's pictures and texture families (:data:`SPLIT_SOURCES`; ``textures`` overrides the
    families)."""
    repetitive = split == "repetitive"
    images, families = SPLIT_SOURCES.get(split, (TRAIN_IMAGES, TEXTURES))
    pairs = [make_pair(_seed(split, i, seed), cfg, repetitive, images, textures or families) for i in indices]
    return {k: torch.stack([p[k] for p in pairs]) for k in pairs[0]}


def held_out_split(name: str, cfg: PairConfig = PairConfig(photometric=False), n: int | None = None) -> dict[str, Tensor]:
    """The fixed evaluation splits, bit-identical across runs (``n`` pairs: default 96, or 320 for
    :data:`MORE_SPLITS`):

    - ``standard`` (held-out pictures and fresh draws of the texture families, mixed warps),
      ``repetitive`` (periodic textures only), ``dynamic`` (as ``standard``, each pair with an
      independently moving object cut from a held-out picture: the KITTI-like case of Table 6),
      all of ``cfg.size``, and ``near_repetitive`` (facades of :mod:`gocor.lab.data.facades`,
      always 128 px, with their ``period``);
    - ``large_motion``: a global shift of up to ±30% of the size per axis on top of the mixed
      warps, from pictures held out from every training mix (:data:`~.images.LARGE_MOTION_TEST_IMAGES`)
      and texture families held out as families (:data:`~.images.TEST_TEXTURES`);
      ``large_motion_val``: the same on the training pictures and families, other draws (for
      choices, never for results);
    - ``motorcycle``: crops of a real stereo pair with ground truth (:mod:`gocor.lab.data.real`);
    - ``dynamic_without_objects``: the ``dynamic`` split's pairs without their moving objects.
    """
    check_splits((name,))
    if n is None:
        n = MORE_SPLIT_SIZE if name in MORE_SPLITS and name != "dynamic_without_objects" else SPLIT_SIZE
    if name == "near_repetitive":
        return facade_batch(range(n), name)
    if name == "motorcycle":
        return motorcycle_batch(range(n), cfg.size)
    if name == "dynamic":
        cfg = replace(cfg, dynamic=1.0)
    if name == "dynamic_without_objects":                  # the dynamic split's pairs, objects left out
        return make_batch(range(n), "dynamic", replace(cfg, dynamic=0.0), seed=0)
    if name.startswith("large_motion"):
        cfg = replace(cfg, translation=LARGE_TRANSLATION)
    return make_batch(range(n), name, cfg, seed=0)
