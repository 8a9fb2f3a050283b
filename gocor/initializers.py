"""Initial filters w⁰ (Sec. 3.4 of the paper). Each maps reference features (B, C, H, W)
to filters of the same shape.

Unlike the authors' code, no initializer returns NaN or Inf on degenerate input
(all-zero feature vectors, constant maps): denominators are bounded away from zero.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

_TINY = 1e-12


def _param(feature_dim: int, flexible: bool, value: float) -> nn.Parameter:
    return nn.Parameter(torch.full((feature_dim if flexible else 1,), value))


def _channels(p: Tensor, like: Tensor) -> Tensor:
    return p.to(like.dtype).view(1, -1, 1, 1)


class ZerosInitializer(nn.Module):
    """w⁰ = 0."""

    def forward(self, ref: Tensor) -> Tensor:
        return torch.zeros_like(ref)


class SimpleInitializer(nn.Module):
    """Global: w_p = β · f_p / ‖f_p‖² (β a scalar, or a C-vector when flexible)."""

    def __init__(self, feature_dim: int, flexible: bool = False):
        super().__init__()
        self.scaling = _param(feature_dim, flexible, 1.0)

    def forward(self, ref: Tensor) -> Tensor:
        sq = (ref * ref).sum(1, keepdim=True).clamp_min(_TINY)
        return _channels(self.scaling, ref) * ref / sq


class ContextInitializer(nn.Module):
    """Global context-aware: the filter in span{f_p, f̄} with w·f_p = a and w·f̄ = b.

    f̄ is the mean reference feature; a = ``target_fg``, b = ``target_bg`` (scalars,
    or C-vectors applied elementwise when flexible). The Gram determinant is clamped
    at max(1e-6, 1e-5·‖f_p‖²‖f̄‖²): the relative bound keeps constant maps (f_p ∥ f̄) finite.
    """

    def __init__(self, feature_dim: int, flexible: bool = False):
        super().__init__()
        self.target_fg = _param(feature_dim, flexible, 1.0)
        self.target_bg = _param(feature_dim, flexible, 0.0)

    def context(self, ref: Tensor) -> Tensor:
        """The context feature f̄ (B, C, 1, 1): the mean reference feature over all positions."""
        return ref.mean(dim=(2, 3), keepdim=True)

    def forward(self, ref: Tensor) -> Tensor:
        mean = self.context(ref)
        ff = (ref * ref).sum(1, keepdim=True)
        mm = (mean * mean).sum(1, keepdim=True)
        fm = (ref * mean).sum(1, keepdim=True)
        a, b = _channels(self.target_fg, ref), _channels(self.target_bg, ref)
        det = (ff * mm - fm * fm).clamp_min(1e-6)
        det = torch.maximum(det, 1e-5 * ff * mm)
        return ((a * mm - b * fm) * ref - (a * fm - b * ff) * mean) / det


class LocalSimpleInitializer(nn.Module):
    """Local: w = β · f / (mean over channels of f² + 1e-6)."""

    def __init__(self, feature_dim: int, flexible: bool = False):
        super().__init__()
        self.scaling = _param(feature_dim, flexible, 1.0)

    def forward(self, ref: Tensor) -> Tensor:
        return _channels(self.scaling, ref) * ref / ((ref * ref).mean(1, keepdim=True) + 1e-6)


GLOBAL_INITIALIZERS = {
    "zeros": lambda c: ZerosInitializer(),
    "simple": lambda c: SimpleInitializer(c),
    "flexible_simple": lambda c: SimpleInitializer(c, flexible=True),
    "context": lambda c: ContextInitializer(c),
    "flexible_context": lambda c: ContextInitializer(c, flexible=True),
}
LOCAL_INITIALIZERS = {
    "zeros": lambda c: ZerosInitializer(),
    "simple": lambda c: LocalSimpleInitializer(c),
    "flexible_simple": lambda c: LocalSimpleInitializer(c, flexible=True),
}
