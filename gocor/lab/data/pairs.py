"""Synthetic image pairs with exact dense ground truth, made offline.

Flow convention: see :mod:`gocor.lab.flow` (flow on the target grid, pointing to the source).

Sources: scikit-image's bundled images (see data/README.md for licences) and procedural
periodic textures, the repetitive case where correlation is ambiguous. Warps: homography,
thin-plate spline and elastic components (kornia), optionally combined, plus optional
photometric jitter and independently moving foreground objects ("dynamic").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import kornia.filters as KF
import kornia.geometry.linalg as KL
import kornia.geometry.transform as KT
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .facades import FacadeConfig, make_facade_pair
from .flow import pixel_grid, remap

# name -> licence, as stated in scikit-image's docstrings
IMAGES = {
    "astronaut": "public domain (NASA)", "brick": "CC0", "grass": "CC0", "gravel": "CC0",
    "coffee": "CC0", "chelsea": "CC0", "rocket": "public domain (SpaceX)", "camera": "CC0",
    "coins": "no known copyright restrictions", "text": "public domain", "clock": "public domain",
    "hubble_deep_field": "public domain (NASA)", "immunohistochemistry": "no known copyright restrictions",
    "retina": "CC0",
}
TEST_IMAGES = ("coffee", "rocket", "retina")            # held out from training
TRAIN_IMAGES = tuple(n for n in IMAGES if n not in TEST_IMAGES)
TEXTURES = ("stripes", "checker", "dots", "bricks", "hexagons")
SPLITS = {"standard": 0, "repetitive": 1, "train": 2, "val": 3, "near_repetitive": 4, "facades_train": 5,
          "dynamic": 6}
HELD_OUT_SPLITS = ("standard", "repetitive", "near_repetitive", "dynamic")
SPLIT_SIZE = 96


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


@lru_cache(maxsize=None)
def load_image(name: str) -> Tensor:
    """A bundled scikit-image picture as float (3, H, W) in [0, 1], short side 256."""
    import skimage.data
    im = getattr(skimage.data, name)()
    im = np.asarray(im, dtype=np.float32)
    if im.max() > 1.5:
        im = im / 255.0
    t = torch.from_numpy(im)
    t = t.unsqueeze(0).expand(3, -1, -1) if t.dim() == 2 else t[..., :3].permute(2, 0, 1)
    scale = 256 / min(t.shape[-2:])
    return F.interpolate(t[None], scale_factor=scale, mode="area" if scale < 1 else "bilinear",
                         align_corners=None if scale < 1 else False)[0].contiguous()


def _rand(gen: torch.Generator, *shape) -> Tensor:
    return torch.rand(shape, generator=gen, dtype=torch.float64)


def texture(kind: str, size: int, gen: torch.Generator) -> Tensor:
    """A procedural periodic texture (3, size, size) in [0, 1]."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64),
                          torch.arange(size, dtype=torch.float64), indexing="ij")
    theta = math.pi * _rand(gen).item()
    period = 5.0 + 7.0 * _rand(gen).item()
    u = (x * math.cos(theta) + y * math.sin(theta)) / period
    v = (-x * math.sin(theta) + y * math.cos(theta)) / period
    if kind == "stripes":
        base = 0.5 + 0.5 * torch.sin(2 * math.pi * u)
    elif kind == "checker":
        base = ((torch.floor(u) + torch.floor(v)) % 2).double()
    elif kind == "dots":
        d = (u - torch.round(u)) ** 2 + (v - torch.round(v)) ** 2
        base = (d < 0.08 + 0.1 * _rand(gen).item()).double()
    elif kind == "bricks":
        row = torch.floor(v)
        uu = u + 0.5 * (row % 2)
        base = (((uu - torch.floor(uu)) > 0.08) & ((v - row) > 0.12)).double()
    elif kind == "hexagons":
        a = u + v / 2
        b = v * math.sqrt(3) / 2
        base = 0.5 + (torch.cos(2 * math.pi * a) + torch.cos(2 * math.pi * b)
                      + torch.cos(2 * math.pi * (a - b))) / 6
    else:
        raise ValueError(f"unknown texture {kind!r}; choose from {TEXTURES}")
    c0, c1 = _rand(gen, 3, 1, 1), _rand(gen, 3, 1, 1)
    img = c0 + (c1 - c0) * base
    img = img + 0.03 * torch.randn(img.shape, generator=gen, dtype=torch.float64)
    return img.clamp(0, 1).float()


def _crop(img: Tensor, size: int, scale: float, gen: torch.Generator) -> Tensor:
    side = min(int(round(size * scale)), *img.shape[-2:])
    top = int(_rand(gen).item() * (img.shape[-2] - side + 1))
    left = int(_rand(gen).item() * (img.shape[-1] - side + 1))
    patch = img[:, top:top + side, left:left + side]
    return F.interpolate(patch[None], size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)[0]



def _grid(size: int) -> Tensor:
    return pixel_grid(size, size).flatten(1).t()[None]   # (1, N, 2) pixel (x, y)


def _mapping(cfg: PairConfig, gen: torch.Generator) -> Tensor:
    """Target pixel coords -> source pixel coords, (size, size, 2), as an exact function."""
    s = cfg.size
    pts = _grid(s)
    kind = int(_rand(gen).item() * 4)                    # 0 H, 1 TPS, 2 H+TPS, 3 H+TPS+elastic
    if kind in (0, 2, 3):
        corners = torch.tensor([[[0, 0], [s - 1, 0], [s - 1, s - 1], [0, s - 1]]], dtype=torch.float32)
        moved = corners + (cfg.homography * s) * (2 * _rand(gen, 1, 4, 2).float() - 1)
        hom = KT.get_perspective_transform(corners, moved)
        pts = KL.transform_points(hom, pts)
    if kind in (1, 2, 3):
        c = torch.linspace(-1, 1, 3)
        ctrl = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).view(1, -1, 2)
        dst = ctrl + 2 * cfg.tps * (2 * _rand(gen, 1, 9, 2).float() - 1)
        kernel, affine = KT.get_tps_transform(ctrl, dst)
        norm = pts / (s - 1) * 2 - 1
        pts = (KT.warp_points_tps(norm, dst, kernel, affine) + 1) / 2 * (s - 1)
    pts = pts.view(s, s, 2)
    if kind == 3:
        noise = torch.randn(1, 2, s, s, generator=gen).float()
        smooth = KF.gaussian_blur2d(noise, (17, 17), (4.0, 4.0))
        smooth = smooth / smooth.abs().amax().clamp_min(1e-6) * cfg.elastic
        pts = pts + smooth[0].permute(1, 2, 0)
    return pts



def _photometric(img: Tensor, gen: torch.Generator) -> Tensor:
    gain = 0.8 + 0.4 * _rand(gen, 3, 1, 1).float()
    bias = 0.1 * (2 * _rand(gen, 1, 1, 1).float() - 1)
    gamma = 0.8 + 0.4 * _rand(gen).item()
    return (img.clamp(0, 1) ** gamma * gain + bias).clamp(0, 1)


def _add_object(source: Tensor, target: Tensor, flow: Tensor, mask: Tensor, cfg: PairConfig,
                gen: torch.Generator, images: tuple[str, ...]) -> None:
    """Paste an independently moving elliptical object cut from one of ``images`` (in place)."""
    s = cfg.size
    name = images[int(_rand(gen).item() * len(images))]
    r = int(s * (0.15 + 0.1 * _rand(gen).item()))
    patch = _crop(load_image(name), 2 * r, 1.0, gen)
    yy, xx = torch.meshgrid(torch.arange(2 * r), torch.arange(2 * r), indexing="ij")
    alpha = (((yy - r + 0.5) / r) ** 2 + ((xx - r + 0.5) / r) ** 2 <= 1).float()
    ty, tx = (int(_rand(gen).item() * (s - 2 * r)) for _ in range(2))
    dx, dy = (int(round((2 * _rand(gen).item() - 1) * s * 0.15)) for _ in range(2))
    sy, sx = min(max(ty + dy, 0), s - 2 * r), min(max(tx + dx, 0), s - 2 * r)
    dy, dx = sy - ty, sx - tx
    # background target pixels whose source point the object now covers are occluded
    sx_all, sy_all = flow[0] + torch.arange(s), flow[1] + torch.arange(s)[:, None]
    cover = torch.zeros(s, s)
    cover[sy:sy + 2 * r, sx:sx + 2 * r] = alpha
    inside = (sx_all >= 0) & (sx_all <= s - 1) & (sy_all >= 0) & (sy_all <= s - 1)
    hit = remap(cover[None, None], torch.stack([sx_all, sy_all], -1)[None])[0, 0] > 0.01
    mask &= ~(hit & inside)
    src_reg = source[:, sy:sy + 2 * r, sx:sx + 2 * r]
    source[:, sy:sy + 2 * r, sx:sx + 2 * r] = alpha * patch + (1 - alpha) * src_reg
    tgt_reg = target[:, ty:ty + 2 * r, tx:tx + 2 * r]
    target[:, ty:ty + 2 * r, tx:tx + 2 * r] = alpha * patch + (1 - alpha) * tgt_reg
    obj = alpha > 0
    flow[0, ty:ty + 2 * r, tx:tx + 2 * r][obj] = float(dx)
    flow[1, ty:ty + 2 * r, tx:tx + 2 * r][obj] = float(dy)
    mask[ty:ty + 2 * r, tx:tx + 2 * r] |= obj


def make_pair(seed: int, cfg: PairConfig = PairConfig(), repetitive: bool = False,
              images: tuple[str, ...] = TRAIN_IMAGES) -> dict[str, Tensor]:
    """One pair: source, target (3, H, W) in [0, 1]; flow (2, H, W); mask (H, W) bool."""
    gen = torch.Generator().manual_seed(seed)
    s = cfg.size
    if repetitive or _rand(gen).item() < cfg.texture_prob:
        kind = TEXTURES[int(_rand(gen).item() * len(TEXTURES))]
        picture = texture(kind, 2 * s, gen)
    else:
        picture = load_image(images[int(_rand(gen).item() * len(images))])
    lo, hi = cfg.scale_range
    source = _crop(picture, s, lo + (hi - lo) * _rand(gen).item(), gen)
    coords = _mapping(cfg, gen)
    target = remap(source[None], coords[None])[0]
    flow = (coords - _grid(s).view(s, s, 2)).permute(2, 0, 1).contiguous()
    mask = ((coords[..., 0] >= 0) & (coords[..., 0] <= s - 1)
            & (coords[..., 1] >= 0) & (coords[..., 1] <= s - 1))
    if cfg.photometric:
        source, target = _photometric(source, gen), _photometric(target, gen)
    # the coin is drawn only when dynamic pairs are asked for: static splits stay as they were
    if cfg.dynamic > 0 and (cfg.dynamic >= 1 or _rand(gen).item() < cfg.dynamic):
        source, target = source.clone(), target.clone()
        _add_object(source, target, flow, mask, cfg, gen, images)
    return {"source": source, "target": target, "flow": flow, "mask": mask}


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
    all of ``cfg.size``, and ``near_repetitive`` (facades of :mod:`gocor.lab.facades`, always
    128 px, with their ``period``). Bit-identical across runs."""
    if name not in HELD_OUT_SPLITS:
        raise ValueError(f"unknown split {name!r}; choose from {HELD_OUT_SPLITS}")
    if name == "near_repetitive":
        return facade_batch(range(n), name)
    if name == "dynamic":
        cfg = replace(cfg, dynamic=1.0)
    return make_batch(range(n), name, cfg, seed=0)
