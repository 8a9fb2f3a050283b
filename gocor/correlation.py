"""Feature correlation as a pair of linear operators: apply and transpose.

A correlation operator holds fixed features ``f`` (B, C, H', W') and maps filters
``w`` (B, C, H, W), one C-vector per position p, to scores (B, M, H, W): for every
filter p, M partner positions q with score ``scale * <w_p, f_q>``. ``transpose``
is the exact adjoint, scores -> filters. The plain correlation layer is
``apply(reference_feat)``; GOCor's solver uses both directions on optimized filters.

- :class:`GlobalCorrelation`: all M = H'·W' query positions (a batched matmul).
  Score channel q = y'·W' + x' (row-major), the layout GLU-Net consumes.
- :class:`LocalCorrelation`: a (2r+1)² search window, channel d = (dy+r)(2r+1) + (dx+r),
  scaled by 1/C as in PWC-Net, zero outside the image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class GlobalCorrelation:
    """All-pairs correlation with fixed features ``feat`` (B, C, H', W')."""

    scale = 1.0

    def __init__(self, feat: Tensor):
        self.feat = feat
        self._flat = feat.flatten(2)  # (B, C, N')

    def like(self, feat: Tensor) -> "GlobalCorrelation":
        """The same operator on other features."""
        return GlobalCorrelation(feat)

    @property
    def partner_grid(self) -> tuple[int, int]:
        """The grid the M score channels form: the query positions (H', W')."""
        return tuple(self.feat.shape[-2:])

    def apply(self, w: Tensor) -> Tensor:
        """Filters (B, C, H, W) -> scores (B, H'·W', H, W)."""
        b, c, h, wd = w.shape
        return torch.bmm(self._flat.transpose(1, 2), w.reshape(b, c, h * wd)).view(b, -1, h, wd)

    def transpose(self, scores: Tensor) -> Tensor:
        """Scores (B, H'·W', H, W) -> filters (B, C, H, W)."""
        b, m, h, wd = scores.shape
        return torch.bmm(self._flat, scores.reshape(b, m, h * wd)).view(b, -1, h, wd)

    def feat_grad(self, w: Tensor, scores: Tensor) -> Tensor:
        """∂<scores, apply(w)>/∂feat: filters (B, C, H, W), scores (B, H'·W', H, W) -> (B, C, H', W')."""
        b, c, h, wd = w.shape
        out = torch.bmm(w.reshape(b, c, h * wd), scores.reshape(b, -1, h * wd).transpose(1, 2))
        return out.view_as(self.feat)

    def offset_distances(self, height: int, width: int) -> Tensor:
        """|q − p| for every displacement q − p between filter grid (H, W) and partner grid
        (H', W'): (H'+H−1, W'+W−1), displacement (dy, dx) at [dy + H − 1, dx + W − 1]."""
        kw = dict(dtype=self.feat.dtype, device=self.feat.device)
        hq, wq = self.feat.shape[-2:]
        dy = torch.arange(1 - height, hq, **kw).view(-1, 1)
        dx = torch.arange(1 - width, wq, **kw)
        return torch.sqrt(dy * dy + dx * dx)

    def expand(self, per_offset: Tensor, height: int, width: int) -> Tensor:
        """A map over displacements (..., H'+H−1, W'+W−1) -> the same map on every
        (partner q, filter p) pair (..., H'·W', H, W): every H'×W' window, read backwards."""
        hq, wq = self.feat.shape[-2:]
        lead = per_offset.shape[:-2]
        cols = F.unfold(per_offset.reshape(1, -1, *per_offset.shape[-2:]), (hq, wq))
        return cols.view(*lead, hq * wq, height, width).flip(-2, -1)

    def distances(self, height: int, width: int) -> Tensor:
        """Euclidean distance (M, H, W) between filter position p and partner q, on one grid."""
        return self.expand(self.offset_distances(height, width), height, width)


class LocalCorrelation:
    """Correlation in a (2r+1)² window with fixed features ``feat`` (B, C, H, W), scaled by 1/C.

    Computed as matmuls: for each vertical offset dy, all pairs between an image row of
    filters (W, C) and the padded feature row (W+2r, C), from which the 2r+1 diagonals of
    the band are read by a reshape. Redundant FLOPs, but at matmul speed (~3x faster on CPU
    than (2r+1)² elementwise passes).
    """

    def __init__(self, feat: Tensor, radius: int = 4):
        if radius < 0:
            raise ValueError(f"search radius must be >= 0, got {radius}")
        self.feat = feat
        self.radius = radius
        self.scale = 1.0 / feat.shape[1]
        r = radius
        self._rows = F.pad(feat, (r, r, r, r)).permute(0, 2, 3, 1)   # (B, H+2r, W+2r, C)

    def like(self, feat: Tensor) -> "LocalCorrelation":
        """The same operator on other features."""
        return LocalCorrelation(feat, self.radius)

    @property
    def partner_grid(self) -> tuple[int, int]:
        """The grid the M score channels form: the window's displacements (2r+1, 2r+1)."""
        k = 2 * self.radius + 1
        return (k, k)

    def apply(self, w: Tensor) -> Tensor:
        """Filters (B, C, H, W) -> scores (B, (2r+1)², H, W)."""
        b, c, h, wd = w.shape
        k = 2 * self.radius + 1
        wl = w.permute(0, 2, 3, 1)                                        # (B, H, W, C)
        bands = [_band(torch.matmul(wl, self._rows[:, dy:dy + h].transpose(-1, -2)), k)
                 for dy in range(k)]                                      # each (B, H, W, k)
        return (torch.stack(bands, 3).flatten(3) * self.scale).permute(0, 3, 1, 2)

    def transpose(self, scores: Tensor) -> Tensor:
        """Scores (B, (2r+1)², H, W) -> filters (B, C, H, W)."""
        b, _, h, wd = scores.shape
        k = 2 * self.radius + 1
        s = scores.permute(0, 2, 3, 1).unflatten(3, (k, k))               # (B, H, W, dy, dx)
        out = sum(torch.matmul(_unband(s[..., dy, :]), self._rows[:, dy:dy + h]) for dy in range(k))
        return (out * self.scale).permute(0, 3, 1, 2)

    def feat_grad(self, w: Tensor, scores: Tensor) -> Tensor:
        """∂<scores, apply(w)>/∂feat: filters and scores as in :meth:`apply` -> (B, C, H, W)."""
        b, c, h, wd = w.shape
        r, k = self.radius, 2 * self.radius + 1
        wl = w.permute(0, 2, 3, 1)                                        # (B, H, W, C)
        s = scores.permute(0, 2, 3, 1).unflatten(3, (k, k))               # (B, H, W, dy, dx)
        rows = w.new_zeros(b, h + 2 * r, wd + 2 * r, c)
        for dy in range(k):
            rows[:, dy:dy + h] += torch.matmul(_unband(s[..., dy, :]).transpose(-1, -2), wl)
        return (rows[:, r:r + h, r:r + wd] * self.scale).permute(0, 3, 1, 2)

    def offset_distances(self, height: int, width: int) -> Tensor:
        """Length of each window displacement, (M, 1, 1)."""
        r = self.radius
        d = torch.arange(-r, r + 1, dtype=self.feat.dtype, device=self.feat.device)
        dy, dx = torch.meshgrid(d, d, indexing="ij")
        return torch.sqrt(dy * dy + dx * dx).reshape(-1, 1, 1)

    def expand(self, per_offset: Tensor, height: int, width: int) -> Tensor:
        """Maps over window displacements (..., M, 1, 1) already broadcast over positions."""
        return per_offset

    def distances(self, height: int, width: int) -> Tensor:
        """Length of each window displacement, (M, 1, 1)."""
        return self.offset_distances(height, width)


def _band(full: Tensor, k: int) -> Tensor:
    """(..., W, W+k-1) all pairs -> (..., W, k) with out[x, j] = full[x, x + j]."""
    w, wk = full.shape[-2:]
    skew = F.pad(full.flatten(-2), (0, w)).unflatten(-1, (w, wk + 1))
    return skew[..., :k]


def _unband(band: Tensor) -> Tensor:
    """Adjoint of :func:`_band`: (..., W, k) -> (..., W, W+k-1), zero off the band."""
    w, k = band.shape[-2:]
    wk = w + k - 1
    skew = F.pad(band, (0, wk + 1 - k)).flatten(-2)
    return skew[..., : w * wk].unflatten(-1, (w, wk))


def global_correlation(reference: Tensor, query: Tensor) -> Tensor:
    """Feature correlation layer, global: (B, C, H, W), (B, C, H', W') -> (B, H'·W', H, W)."""
    return GlobalCorrelation(query).apply(reference)


def local_correlation(reference: Tensor, query: Tensor, radius: int = 4) -> Tensor:
    """Feature correlation layer, local: (B, C, H, W) twice -> (B, (2r+1)², H, W), scaled by 1/C."""
    return LocalCorrelation(query, radius).apply(reference)

