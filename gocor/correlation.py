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

import math
import numbers
import threading
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class CorrelationOperator(Protocol):
    """What the solver (:mod:`gocor.solver`) needs of a correlation: fixed features, a score
    scale, apply/transpose, the gradient wrt the features, and the distance of every
    displacement between filter and partner with the map that spreads it over all pairs (and
    the distances themselves, (M, H, W)). Both classes below are one."""

    feat: Tensor
    scale: float

    def apply(self, w: Tensor) -> Tensor: ...

    def transpose(self, scores: Tensor) -> Tensor: ...

    def feat_grad(self, w: Tensor, scores: Tensor) -> Tensor: ...

    def transpose_and_feat_grad(self, w: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]: ...

    def offset_distances(self, height: int, width: int) -> Tensor: ...

    def expand(self, per_offset: Tensor, height: int, width: int) -> Tensor: ...

    def distances(self, height: int, width: int) -> Tensor: ...

    def like(self, feat: Tensor) -> "CorrelationOperator": ...

    @property
    def partner_grid(self) -> tuple[int, int]: ...


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

    def transpose_and_feat_grad(self, w: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
        """``(transpose(scores), feat_grad(w, scores))``."""
        return self.transpose(scores), self.feat_grad(w, scores)

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

    Computed on T×T tiles of filters (T = max(2r, 4)): all pairs between a tile's T² filters and
    the (T+2r)² features around it are one matmul, (T², C)·(C, (T+2r)²), batched over the tiles,
    and the (2r+1)² window of each filter is a strided view of the product. That is
    (T+2r)²/(2r+1)² times the pairs the window needs (3.2 at r = 4) in matmuls large enough to run
    at matmul speed, against W+2r columns per filter when whole image rows are paired. The feature
    windows (one (T+2r)² patch per tile) are built once per operator and shared by every
    application. On the CPU a pass takes a few images at a time (:meth:`images_per_chunk`), so that
    the products it writes are still in the cache when they are read. ``apply``, ``transpose``
    and ``feat_grad`` are mutually adjoint autograd
    functions (each one's derivatives are the other two), so any order of derivative is exact.
    """

    def __init__(self, feat: Tensor, radius: int = 4):
        if isinstance(radius, bool) or not isinstance(radius, numbers.Integral) or radius < 0:
            raise ValueError(f"search radius must be an integer >= 0, got {radius!r}")
        self.feat = feat
        self.radius = radius
        self.scale = 1.0 / feat.shape[1]
        self.tile = max(2 * radius, 4)     # T >= 2r: a window overlaps only the next tiles right and down
        self._windows: Tensor | None = None

    def scores_to_pairs(self, scores: Tensor) -> Tensor:
        """Scores (B, (2r+1)², H, W) -> (B·tiles, (T+2r)², T²): the all-pairs products of each tile
        (feature, filter), zero off the windows. In a work buffer of this thread shared by every
        operator of this geometry and image size (each call writes the windows of the filters in
        the image and nothing else, so the rest stays zero): valid until the next call."""
        b, m, h, w = scores.shape
        k = 2 * self.radius + 1
        t, s = self.tile, self.tile + 2 * self.radius
        nh, nw = _grid(scores, t)
        # per image size too: the windows of filters beyond the image are never written (stay zero)
        pairs = _buffer(f"pairs {h}x{w}", (b * nh * nw, s * s, t * t), scores, zero=True)
        _to_tiles(_window_band(pairs, b, nh, nw, t, k).permute(0, 5, 6, 1, 3, 2, 4), scores.unflatten(1, (k, k)))
        return pairs

    def products(self, w: Tensor) -> Tensor:
        """(B·tiles, T², (T+2r)²): the all-pairs products (filter, feature) of each tile, in a buffer
        of this thread, valid until the next call (a fresh 10-MB result per call costs its first-touch
        page faults). Filter-major: a filter's window is 2r+1 contiguous runs of 2r+1 products, which
        the copy that reads the windows out reads faster than the feature-major layout's single values."""
        tiles, windows = _filter_tiles(w, self.tile), self.windows().transpose(1, 2)
        out = _buffer("products", (tiles.shape[0], tiles.shape[1], windows.shape[2]), tiles)
        return torch.bmm(tiles, windows, out=out)

    def like(self, feat: Tensor) -> "LocalCorrelation":
        """The same operator on other features."""
        return LocalCorrelation(feat, self.radius)

    @property
    def partner_grid(self) -> tuple[int, int]:
        """The grid the M score channels form: the window's displacements (2r+1, 2r+1)."""
        k = 2 * self.radius + 1
        return (k, k)

    def windows(self) -> Tensor:
        """The scaled feature patch around every tile, (B·tiles, (T+2r)², C), built once."""
        if self._windows is None:
            self._windows = _feature_windows(self.feat.detach(), self.radius, self.tile, self.scale)
        return self._windows

    def images(self, start: int, stop: int) -> "LocalCorrelation":
        """The operator on images [start, stop) of the batch, features (stop − start, C, H, W),
        sharing this one's feature windows ((stop − start)·tiles, (T+2r)², C)."""
        if not 0 <= start < stop <= self.feat.shape[0]:
            raise ValueError(f"images [start, stop) must lie in [0, {self.feat.shape[0]}), got [{start}, {stop})")
        sub = LocalCorrelation(self.feat[start:stop], self.radius)
        tiles = self.windows().shape[0] // self.feat.shape[0]
        sub._windows = self.windows()[start * tiles:stop * tiles]
        return sub

    def product_bytes_per_image(self) -> int:
        """Bytes of one image's tile products, tiles·(T+2r)²·T² entries of the features' dtype."""
        nh, nw = _grid(self.feat, self.tile)
        s = self.tile + 2 * self.radius
        return nh * nw * s * s * self.tile * self.tile * self.feat.element_size()

    def images_per_chunk(self) -> int:
        """How many images one pass takes at a time: on the CPU, when the whole batch's tile
        products (:meth:`product_bytes_per_image` each) exceed :data:`_CHUNK_ABOVE`, as many as
        keep them within :data:`_CHUNK_BYTES` (one when one image holds more), so that they are
        still in the cache when the matmul reads them; else, and off the CPU, the whole batch."""
        b = self.feat.shape[0]
        if self.feat.device.type != "cpu":
            return b
        per_image = self.product_bytes_per_image()
        if b * per_image <= _CHUNK_ABOVE:
            return b
        return max(1, _CHUNK_BYTES // per_image)

    def apply(self, w: Tensor) -> Tensor:
        """Filters (B, C, H, W) -> scores (B, (2r+1)², H, W)."""
        return _LocalApply.apply(w, self.feat, self)

    def transpose(self, scores: Tensor) -> Tensor:
        """Scores (B, (2r+1)², H, W) -> filters (B, C, H, W)."""
        return _LocalTranspose.apply(scores, self.feat, self)

    def feat_grad(self, w: Tensor, scores: Tensor) -> Tensor:
        """∂<scores, apply(w)>/∂feat: filters and scores as in :meth:`apply` -> (B, C, H, W)."""
        return _LocalFeatGrad.apply(w, scores, self)

    def transpose_and_feat_grad(self, w: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
        """``(transpose(scores), feat_grad(w, scores))``, the scores scattered into the tiles once.
        Not differentiable (for reverse passes written out, e.g. the solver's); under autograd
        (grad mode on) it is the two differentiable calls."""
        if torch.is_grad_enabled():
            return self.transpose(scores), self.feat_grad(w, scores)
        return _by_images(self, _local_transpose_and_feat_grad, ("filters", "scores"), w, scores)

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


# Passes over a batch whose tile products exceed _CHUNK_ABOVE go at most _CHUNK_BYTES at a time (CPU). Set
# from interleaved timings of two cases: chunks of 4 MiB made the bench's B = 4, C = 64, 64², r = 4
# case faster (16 MiB of products); the matcher's 1/2 level (11.4 MiB) was as fast or slower.
_CHUNK_ABOVE = 12 * 2 ** 20
_CHUNK_BYTES = 4 * 2 ** 20
_BUFFERS = threading.local()            # per thread: {(kind, shape, dtype): Tensor}, CPU only
_BUFFER_BYTES = 128 * 2 ** 20           # kept in all per thread; beyond, the lot is dropped


def _buffer(kind: str, shape: tuple[int, ...], like: Tensor, zero: bool = False) -> Tensor:
    """A work tensor ``kind`` of ``shape`` with ``like``'s dtype and device (zero-filled with
    ``zero``); the caller uses it up before its thread's next call for this kind. On the CPU it is
    kept per thread and reused (a fresh tensor of this size per call pays a zero fill and its
    first-touch page faults); elsewhere (the CUDA caching allocator reuses memory already) it is new."""
    make = torch.zeros if zero else torch.empty
    if like.device.type != "cpu":
        return make(shape, dtype=like.dtype, device=like.device)
    cache = getattr(_BUFFERS, "cache", None)
    if cache is None:
        cache = _BUFFERS.cache = {}
    key = (kind, tuple(shape), like.dtype)
    entry = cache.get(key)
    if entry is None:
        with torch.inference_mode(False):       # a normal tensor: writable outside inference mode too
            entry = make(shape, dtype=like.dtype)
        size = entry.numel() * entry.element_size()
        if size > _BUFFER_BYTES:
            return entry
        if sum(t.numel() * t.element_size() for t in cache.values()) + size > _BUFFER_BYTES:
            cache.clear()
        cache[key] = entry
    return entry


def _pad_to(x: Tensor, h: int, w: int) -> Tensor:
    """Zero-pad (..., H, W) at the bottom and right to (..., h, w); ``x`` itself when it fits."""
    if x.shape[-2:] == (h, w):
        return x
    return F.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))


def _tile_pieces(h: int, w: int, t: int):
    """The image (H, W) on its t×t tile grid in up to four pieces (full tiles, the last partial
    column, row, corner): (rows, cols, tile rows, tile cols, rows per tile, cols per tile) each."""
    fh, fw, rh, rw = h // t, w // t, h % t, w % t
    for (r0, r1, i0, i1, th) in ((0, fh * t, 0, fh, t), (fh * t, h, fh, fh + 1, rh)):
        for (c0, c1, j0, j1, tw) in ((0, fw * t, 0, fw, t), (fw * t, w, fw, fw + 1, rw)):
            if r1 > r0 and c1 > c0:
                yield slice(r0, r1), slice(c0, c1), slice(i0, i1), slice(j0, j1), th, tw


def _from_tiles(x: Tensor, h: int, w: int) -> Tensor:
    """A map on a padded tile grid, (..., nh, t, nw, t) (any strides) -> (..., H, W) contiguous,
    in one copy (no padded intermediate)."""
    t = x.shape[-1]
    out = x.new_empty(*x.shape[:-4], h, w)
    for rows, cols, ti, tj, th, tw in _tile_pieces(h, w, t):
        dst = out[..., rows, cols]
        dst.view(*dst.shape[:-2], ti.stop - ti.start, th, tj.stop - tj.start, tw).copy_(x[..., ti, :th, tj, :tw])
    return out


def _to_tiles(dst: Tensor, x: Tensor) -> None:
    """Write a map (..., H, W) into its padded tile grid ``dst`` (..., nh, t, nw, t) (any strides),
    in one copy; the padding is left as it is."""
    h, w, t = x.shape[-2], x.shape[-1], dst.shape[-1]
    for rows, cols, ti, tj, th, tw in _tile_pieces(h, w, t):
        src = x[..., rows, cols]
        dst[..., ti, :th, tj, :tw].copy_(src.reshape(*src.shape[:-2], ti.stop - ti.start, th, tj.stop - tj.start, tw))


def _grid(x: Tensor, t: int) -> tuple[int, int]:
    """Tiles per column and per row of a (..., H, W) map cut into t×t tiles."""
    return -(-x.shape[-2] // t), -(-x.shape[-1] // t)


def _feature_windows(feat: Tensor, r: int, t: int, scale: float = 1.0) -> Tensor:
    """(B, C, H, W) -> (B·nh·nw, (t+2r)², C): the zero-padded features around each t×t tile, times
    ``scale`` (applied to the features before they are copied into the overlapping windows: the
    same products, one pass over the features instead of one over the windows)."""
    b, c, h, w = feat.shape
    nh, nw = _grid(feat, t)
    s = t + 2 * r
    fp = _scaled_copy(F.pad(feat, (r, r + nw * t - w, r, r + nh * t - h)).permute(0, 2, 3, 1), scale)
    sb, sy, sx, _ = fp.stride()
    return fp.as_strided((b, nh, nw, s, s, c), (sb, t * sy, t * sx, sy, sx, 1)).reshape(b * nh * nw, s * s, c)


def _filter_tiles(w: Tensor, t: int, scale: float | None = None) -> Tensor:
    """(B, C, H, W) -> (B·nh·nw, t², C), zero beyond the image; times ``scale`` in the same pass
    when given (the same products as scaling the tiles afterwards)."""
    b, c, h, wd = w.shape
    nh, nw = _grid(w, t)
    tiles = _pad_to(w, nh * t, nw * t).view(b, c, nh, t, nw, t).permute(0, 2, 4, 3, 5, 1)
    if scale is None:
        return tiles.reshape(b * nh * nw, t * t, c)
    return _scaled_copy(tiles, scale).view(b * nh * nw, t * t, c)


def _scaled_copy(x: Tensor, scale: float) -> Tensor:
    """``x * scale``, contiguous in ``x``'s index order whatever its strides (``x * scale`` keeps
    a permuted view's memory order, and a reshape after it would copy again)."""
    return torch.mul(x, scale, out=x.new_empty(x.shape))


def _untile(x: Tensor, b: int, h: int, w: int, t: int) -> Tensor:
    """The inverse of :func:`_filter_tiles`: (B·nh·nw, t², C) -> (B, C, H, W)."""
    nh, nw = -(-h // t), -(-w // t)
    return _from_tiles(x.view(b, nh, nw, t, t, -1).permute(0, 5, 1, 3, 2, 4), h, w)


def _window_band(pairs: Tensor, b: int, nh: int, nw: int, t: int, k: int, filter_major: bool = False) -> Tensor:
    """The (2r+1)² window of every filter inside the all-pairs products of the tiles:
    (B·nh·nw, s², t²) (feature, filter), or (B·nh·nw, t², s²) (filter, feature) with ``filter_major``,
    contiguous -> strided view (B, nh, nw, t, t, k, k), entry [.., y, x, dy, dx] = the product of
    filter (y, x) and feature (y + dy, x + dx)."""
    s = t + k - 1
    n0 = t * t * s * s
    inner = (t * s * s + s, s * s + 1, s, 1) if filter_major else (s * t * t + t, t * t + 1, s * t * t, t * t)
    return pairs.as_strided((b, nh, nw, t, t, k, k), (nh * nw * n0, nw * n0, n0, *inner))


def _by_images(op: LocalCorrelation, fn: Callable[..., Tensor | tuple[Tensor, ...]],
               names: tuple[str, ...], *tensors: Tensor):
    """``fn(op, *tensors)`` (filters (B, C, H, W) and/or scores (B, M, H, W), named ``names`` in
    errors) computed on chunks of the batch (``op.images_per_chunk()`` images each) and
    concatenated along it: every image's result is computed as in one call (the same products)."""
    b = op.feat.shape[0]
    for name, t in zip(names, tensors):
        if t.shape[0] != b:
            raise ValueError(f"{name} hold {t.shape[0]} images, the correlation's features {b}")
    n = op.images_per_chunk()
    if n >= b:
        return fn(op, *tensors)
    parts = [fn(op.images(i, min(i + n, b)), *(t[i:i + n] for t in tensors)) for i in range(0, b, n)]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(p) for p in zip(*parts))
    return torch.cat(parts)


def _local_transpose_and_feat_grad(op: LocalCorrelation, w: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """``(transpose(scores), feat_grad(w, scores))`` with the scores scattered into the tiles once."""
    pairs = op.scores_to_pairs(scores)
    return _local_transpose(op, scores, pairs), _local_feat_grad(op, w, scores, pairs)


def _local_apply(op: LocalCorrelation, w: Tensor) -> Tensor:
    b, _, h, wd = w.shape
    t, k = op.tile, 2 * op.radius + 1
    nh, nw = _grid(w, t)
    band = _window_band(op.products(w), b, nh, nw, t, k, filter_major=True)  # (B, nh, nw, y, x, dy, dx)
    return _from_tiles(band.permute(0, 5, 6, 1, 3, 2, 4), h, wd).view(b, k * k, h, wd)


def _local_transpose(op: LocalCorrelation, scores: Tensor, pairs: Tensor | None = None) -> Tensor:
    """``pairs``: ``op.scores_to_pairs(scores)`` when already made."""
    b, _, h, w = scores.shape
    pairs = op.scores_to_pairs(scores) if pairs is None else pairs
    return _untile(torch.bmm(pairs.transpose(1, 2), op.windows()), b, h, w, op.tile)


def _local_feat_grad(op: LocalCorrelation, w: Tensor, scores: Tensor, pairs: Tensor | None = None) -> Tensor:
    """``pairs``: ``op.scores_to_pairs(scores)`` when already made."""
    b, c, h, wd = w.shape
    t, r = op.tile, op.radius
    nh, nw = _grid(w, t)
    s = t + 2 * r
    pairs = op.scores_to_pairs(scores) if pairs is None else pairs
    grad = torch.bmm(pairs, _filter_tiles(w, t, op.scale))
    grad = grad.view(b, nh, nw, s, s, c).permute(0, 1, 3, 2, 4, 5)          # (B, nh, sy, nw, sx, C)
    # overlap-add of the windows: rows/columns [0, t) stay in their tile, [t, t+2r) spill into the next
    out = w.new_empty(b, nh + 1, t, nw + 1, t, c)
    out[:, :nh, :, :nw] = grad[:, :, :t, :, :t]
    out[:, nh].zero_()
    out[:, :nh, :, nw].zero_()
    for ya, yb, i, xa, xb, j in ((0, t, 0, t, s, 1), (t, s, 1, 0, t, 0), (t, s, 1, t, s, 1)):
        out[:, i:i + nh, :yb - ya, j:j + nw, :xb - xa] += grad[:, :, ya:yb, :, xa:xb]
    out = out.view(b, (nh + 1) * t, (nw + 1) * t, c)[:, r:r + h, r:r + wd]
    return out.permute(0, 3, 1, 2).contiguous()


class _LocalApply(torch.autograd.Function):
    """scores = A_f w; the derivatives are A_fᵀ (filters) and feat_grad (features)."""

    @staticmethod
    def forward(ctx, w: Tensor, feat: Tensor, op: LocalCorrelation) -> Tensor:
        ctx.op = op
        ctx.save_for_backward(w)
        return _by_images(op, _local_apply, ("filters",), w)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (w,) = ctx.saved_tensors
        if all(ctx.needs_input_grad[:2]):
            return (*ctx.op.transpose_and_feat_grad(w, grad), None)
        gw = ctx.op.transpose(grad) if ctx.needs_input_grad[0] else None
        gf = ctx.op.feat_grad(w, grad) if ctx.needs_input_grad[1] else None
        return gw, gf, None


class _LocalTranspose(torch.autograd.Function):
    """filters = A_fᵀ scores; <x̄, A_fᵀ s> = <A_f x̄, s>."""

    @staticmethod
    def forward(ctx, scores: Tensor, feat: Tensor, op: LocalCorrelation) -> Tensor:
        ctx.op = op
        ctx.save_for_backward(scores)
        return _by_images(op, _local_transpose, ("scores",), scores)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (scores,) = ctx.saved_tensors
        gs = ctx.op.apply(grad) if ctx.needs_input_grad[0] else None
        gf = ctx.op.feat_grad(grad, scores) if ctx.needs_input_grad[1] else None
        return gs, gf, None


class _LocalFeatGrad(torch.autograd.Function):
    """feat_grad(w, s); <ḡ, feat_grad(w, s)> = <s, A_ḡ w>."""

    @staticmethod
    def forward(ctx, w: Tensor, scores: Tensor, op: LocalCorrelation) -> Tensor:
        ctx.op = op
        ctx.save_for_backward(w, scores)
        return _by_images(op, _local_feat_grad, ("filters", "scores"), w, scores)

    @staticmethod
    def backward(ctx, grad: Tensor):
        w, scores = ctx.saved_tensors
        op = ctx.op.like(grad)
        gw = op.transpose(scores) if ctx.needs_input_grad[0] else None
        gs = op.apply(w) if ctx.needs_input_grad[1] else None
        return gw, gs, None


def global_correlation(reference: Tensor, query: Tensor) -> Tensor:
    """Feature correlation layer, global: (B, C, H, W), (B, C, H', W') -> (B, H'·W', H, W),
    unscaled (channel q = y'·W' + x' holds <reference_p, query_q>)."""
    reference, query = _check_pair(reference, query, same_size=False)
    return GlobalCorrelation(query).apply(reference)


def local_correlation(reference: Tensor, query: Tensor, radius: int = 4) -> Tensor:
    """Feature correlation layer, local: (B, C, H, W) twice -> (B, (2r+1)², H, W), scaled by 1/C."""
    reference, query = _check_pair(reference, query, same_size=True)
    return LocalCorrelation(query, radius).apply(reference)


def _check_pair(reference: Tensor, query: Tensor, same_size: bool) -> tuple[Tensor, Tensor]:
    """The layers' inputs, checked as GOCor's modules check theirs (errors naming the argument).
    Under autocast the two may differ in floating dtype (a warped query comes back in float32):
    both are then cast to autocast's dtype, as autocast casts a matmul's operands."""
    from .module import check_features          # module imports this file
    from .solver import autocast_dtype, autocast_enabled
    device = reference.device.type if isinstance(reference, Tensor) else "cpu"
    autocast = autocast_enabled(device)
    check_features(reference, query, None, same_size, mixed_dtypes=autocast, names=("reference", "query"))
    if autocast and reference.dtype != query.dtype:
        dtype = autocast_dtype(device)
        reference, query = reference.to(dtype), query.to(dtype)
    return reference, query

