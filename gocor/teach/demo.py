"""The ambiguous pair used across the notebooks.

A strong periodic pattern (shared by many positions) plus a weak, smooth, non-periodic
signal (the only thing that tells the copies apart). The query is the reference shifted
by a known integer displacement, with independent noise. Hand-made patch descriptors keep
the example free of any training, so every number about it is reproducible on a CPU.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _scene(size: int, period: float, unique: float, gen: torch.Generator) -> Tensor:
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    periodic = torch.sin(2 * math.pi * x / period) * torch.sin(2 * math.pi * y / period)
    smooth = F.interpolate(torch.randn(1, 1, 6, 6, generator=gen), size=(size, size), mode="bicubic",
                           align_corners=True)[0, 0]
    return periodic + unique * smooth


def ambiguous_pair(size: int = 24, shift: tuple[int, int] = (3, 2), period: float = 4.0,
                   unique: float = 0.2, noise: float = 0.05, seed: int = 0) -> dict:
    """Reference and query grayscale images (1, 1, size, size); the true match of reference
    pixel (y, x) is query pixel (y - dy, x - dx) with (dx, dy) = ``shift``."""
    gen = torch.Generator().manual_seed(seed)
    dx, dy = shift
    big = _scene(size + 2 * max(abs(dx), abs(dy)), period, unique, gen)
    m = max(abs(dx), abs(dy))
    ref = big[m:m + size, m:m + size]
    query = big[m + dy:m + dy + size, m + dx:m + dx + size]
    ref = ref + noise * torch.randn(ref.shape, generator=gen)
    query = query + noise * torch.randn(query.shape, generator=gen)
    return {"reference": ref[None, None], "query": query[None, None], "shift": shift}


def patch_features(img: Tensor, k: int = 5) -> Tensor:
    """(B, 1, H, W) -> (B, k², H, W): each pixel's k×k neighbourhood, zero-mean, unit norm."""
    cols = F.unfold(img, k, padding=k // 2).view(img.shape[0], k * k, *img.shape[-2:])
    cols = cols - cols.mean(1, keepdim=True)
    return F.normalize(cols, dim=1)


def true_match(y: int, x: int, shift: tuple[int, int]) -> tuple[int, int]:
    dx, dy = shift
    return y - dy, x - dx


def match_accuracy(volume: Tensor, shift: tuple[int, int], border: int = 0) -> float:
    """Share of reference pixels (inside ``border``) whose argmax over the query is the true match.
    volume: global (1, H·W, H, W)."""
    _, n, h, w = volume.shape
    arg = volume[0].argmax(0)                                            # (H, W) flat query index
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ty, tx = true_match(ys, xs, shift)
    valid = (ty >= border) & (ty < h - border) & (tx >= border) & (tx < w - border)
    return ((arg == ty * w + tx) & valid).sum().item() / valid.sum().item()
