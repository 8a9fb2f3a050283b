"""The random draws and pixel geometry shared by every pair generator (:mod:`.pairs`,
:mod:`.facades`): seeded uniform draws, a square image's corners and pixel points, and which
mapped points land inside it.

Flow convention: :mod:`gocor.lab.data.flow`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .flow import pixel_grid


def uniform(gen: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """U[0, 1) of ``shape`` from ``gen`` (a 0-d tensor when no shape is given). The dtype is part
    of the draw: float64 and float32 give different numbers from the same generator state."""
    return torch.rand(shape, generator=gen, dtype=dtype)


def corners(size: int) -> Tensor:
    """The pixel (x, y) corners of a square image, (1, 4, 2): top-left, top-right, bottom-right,
    bottom-left (kornia's perspective-transform order)."""
    s = size - 1
    return torch.tensor([[[0, 0], [s, 0], [s, s], [0, s]]], dtype=torch.float32)


def pixel_points(size: int) -> Tensor:
    """Every pixel (x, y) of a square image as a point list (1, size², 2), row by row."""
    return pixel_grid(size, size).flatten(1).t()[None]


def inside(coords: Tensor, size: int) -> Tensor:
    """Which pixel coordinates (..., 2) = (x, y) lie in a square image of ``size``: (...) bool."""
    x, y = coords[..., 0], coords[..., 1]
    return (x >= 0) & (x <= size - 1) & (y >= 0) & (y <= size - 1)

