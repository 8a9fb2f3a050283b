"""Real pairs with ground truth, from what the installed wheels ship: the Middlebury 2014
"motorcycle" stereo pair in scikit-image (``skimage.data.stereo_motorcycle()``: left, right, and
the left view's disparity, infinite where unknown).

As a flow pair: the target is the left view, the source the right one, and left pixel (x, y) is
right pixel (x − d, y), so the flow is u = −d, v = 0 (convention of :mod:`gocor.lab.data.flow`).
Pairs are square crops at the matcher's scale: a window of 3–5 × the crop's size (drawn per crop)
at the same place in both views, shrunk to the crop's size. At 64 px that gives disparities of
about 2–19 px (median ≈ 10): about two thirds of the valid pixels move more than one global cell (8
px) of the 64 px matcher. Pixels with an unknown disparity, or whose match leaves the source crop
(occluded or out of view), are masked out: about 56% of the pixels stay valid.

Every crop comes from one scene: the crops are not independent samples, and a per-pair interval
over them understates the uncertainty about "real data" in general.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .images import rand64
from .sampling import inside

MOTORCYCLE_SCALE = (3.0, 5.0)       # shrink factors of the full 741 x 500 pair


@lru_cache(maxsize=1)
def motorcycle() -> tuple[Tensor, Tensor, Tensor]:
    """The full pair: left, right (3, 500, 741) float in [0, 1] and the left disparity (500, 741),
    NaN where unknown."""
    import skimage.data
    left, right, disp = skimage.data.stereo_motorcycle()
    img = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
    d = torch.from_numpy(np.where(np.isfinite(disp), disp, np.nan).astype(np.float32))
    return img(left), img(right), d


def motorcycle_pair(seed: int, size: int = 64, scale_range: tuple[float, float] = MOTORCYCLE_SCALE) -> dict[str, Tensor]:
    """One crop: source (right), target (left) (3, size, size) in [0, 1]; flow (2, size, size);
    mask (size, size) bool. A window of ``factor`` × ``size`` full-resolution pixels at the same
    place in both views, shrunk to ``size`` by area averaging (the disparity too, NaN wherever it
    covers an unknown pixel, and scaled by the shrink). A pure function of its arguments."""
    lo, hi = scale_range
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range: expected 0 < low <= high, got {scale_range}")
    gen = torch.Generator().manual_seed(seed)
    left, right, disp = motorcycle()
    h, w = disp.shape
    side = int(round(size * (lo + (hi - lo) * rand64(gen).item())))
    if side > min(h, w):
        raise ValueError(f"scale_range: windows of {side} px do not fit the {w} x {h} pair; lower it")
    top = int(rand64(gen).item() * (h - side + 1))
    left_x = int(rand64(gen).item() * (w - side + 1))
    win = (slice(top, top + side), slice(left_x, left_x + side))
    area = lambda t: F.interpolate(t[None], size=(size, size), mode="area")[0]
    d = area(disp[win][None])[0] * (size / side)
    xs = torch.arange(size, dtype=torch.float32).expand(size, size)
    coords = torch.stack([xs - d, xs.t()], dim=-1)
    mask = torch.isfinite(d) & inside(torch.nan_to_num(coords, nan=-1.0), size)
    flow = torch.where(mask, torch.stack([-d, torch.zeros_like(d)]), torch.zeros(2, size, size))
    return {"source": area(right[(slice(None), *win)]).contiguous(),
            "target": area(left[(slice(None), *win)]).contiguous(), "flow": flow, "mask": mask}


def motorcycle_batch(indices, size: int = 64, seed: int = 0,
                     scale_range: tuple[float, float] = MOTORCYCLE_SCALE) -> dict[str, Tensor]:
    """Stack the crops with the given indices (crop i of ``seed`` is the same in every call)."""
    pairs = [motorcycle_pair(seed * 1_000_003 + i, size, scale_range) for i in indices]
    return {k: torch.stack([p[k] for p in pairs]) for k in pairs[0]}
