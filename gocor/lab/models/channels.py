"""Norms over the channel dimension (dim 1) of (B, C, H, W) tensors.

``torch.linalg.vector_norm(x, dim=1)`` (and so ``Tensor.norm`` and ``F.normalize``) takes a
slow strided-reduction path on CPU for NCHW tensors (timings: the README's Benchmark section).
These give the same values and gradients at the elementwise speed.
"""
from __future__ import annotations

import torch
from torch import Tensor


def channel_norm(x: Tensor, keepdim: bool = False) -> Tensor:
    """‖x‖ over dim 1: (B, C, ...) -> (B, ...) (or (B, 1, ...)). The gradient at a zero vector
    is 0, as for ``torch.norm``."""
    sq = x.square().sum(1, keepdim=keepdim)
    pos = sq > 0
    return torch.where(pos, sq.clamp_min(torch.finfo(x.dtype).tiny).sqrt(), 0.0)


def normalize_channels(x: Tensor, eps: float = 1e-12) -> Tensor:
    """x / max(‖x‖, eps) over dim 1, as ``F.normalize(x, dim=1, eps=eps)``."""
    return x / channel_norm(x, keepdim=True).clamp_min(eps)
