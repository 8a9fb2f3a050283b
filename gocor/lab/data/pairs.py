"""Synthetic image pairs with exact dense ground truth, made offline: a picture
(:mod:`.images`), a random crop and warp (:mod:`.warps`), optional photometric jitter and an
independently moving foreground object ("dynamic").

Flow convention: see :mod:`gocor.lab.data.flow` (flow on the target grid, pointing to the source).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .flow import remap
from .images import TEXTURES, TRAIN_IMAGES, load_image, rand64, texture
from .sampling import inside, pixel_points
from .warps import add_object, crop, photometric, random_warp


@dataclass(frozen=True)
class PairConfig:
    size: int = 64                  # square images, pixels
    texture_prob: float = 0.3       # share of procedural textures ("standard" mix)
    homography: float = 0.12        # corner jitter, fraction of the size
    tps: float = 0.06               # control-point jitter, fraction of the size
    elastic: float = 1.5            # elastic amplitude, pixels
    scale_range: tuple[float, float] = (0.8, 1.25)
    photometric: bool = True
    dynamic: float = 0.0            # probability of an independently moving foreground object
    translation: float = 0.0        # a global shift of up to this fraction of the size per axis
                                    # (large motion: the global level's job); 0 draws nothing


def make_pair(seed: int, cfg: PairConfig = PairConfig(), repetitive: bool = False,
              images: tuple[str, ...] = TRAIN_IMAGES, textures: tuple[str, ...] = TEXTURES) -> dict[str, Tensor]:
    """One pair: source, target (3, H, W) in [0, 1]; flow (2, H, W); mask (H, W) bool; with
    ``cfg.dynamic`` > 0 also ``object`` (H, W) bool, the moving object's target pixels (all False
    when this pair got none). Pictures come from ``images``, procedural textures from the
    families ``textures``."""
    gen = torch.Generator().manual_seed(seed)
    s = cfg.size
    if repetitive or rand64(gen).item() < cfg.texture_prob:
        kind = textures[int(rand64(gen).item() * len(textures))]
        picture = texture(kind, 2 * s, gen)
    else:
        picture = load_image(images[int(rand64(gen).item() * len(images))])
    lo, hi = cfg.scale_range
    scale = lo + (hi - lo) * rand64(gen).item()
    if cfg.translation > 0:
        # the target may look past the source's border: it is sampled from a canvas around the
        # source (same pixel scale), and only pixels whose match lies in the source are valid
        pad = math.ceil(cfg.translation * s) + 1
        canvas = crop(picture, s + 2 * pad, scale, gen)
        source = canvas[:, pad:pad + s, pad:pad + s].contiguous()
        coords = random_warp(s, cfg.homography, cfg.tps, cfg.elastic, gen)
        coords = coords + (cfg.translation * s) * (2 * rand64(gen, 2).float() - 1)
        target = remap(canvas[None], (coords + pad)[None])[0]
    else:
        source = crop(picture, s, scale, gen)
        coords = random_warp(s, cfg.homography, cfg.tps, cfg.elastic, gen)
        target = remap(source[None], coords[None])[0]
    flow = (coords - pixel_points(s).view(s, s, 2)).permute(2, 0, 1).contiguous()
    mask = inside(coords, s)
    if cfg.photometric:
        source, target = photometric(source, gen), photometric(target, gen)
    # the coin is drawn only when dynamic pairs are asked for: static splits stay as they were
    pair = {"source": source, "target": target, "flow": flow, "mask": mask}
    if cfg.dynamic > 0:
        pair["object"] = torch.zeros(s, s, dtype=torch.bool)
        if cfg.dynamic >= 1 or rand64(gen).item() < cfg.dynamic:
            pair["source"], pair["target"] = source.clone(), target.clone()
            pair["object"] = add_object(pair["source"], pair["target"], flow, mask, gen, images)
    return pair
