"""Metrics of dense flow at image resolution and of a global volume's argmax (coarse), over
valid pixels / cells. Pure functions of tensors: a training target may use them too (the
volume experiment trains on :func:`coarse_truth`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.flow import pixel_grid
from ..models.channels import channel_norm


def flow_metrics(pred: Tensor, gt: Tensor, mask: Tensor) -> dict[str, float]:
    """AEPE, PCK-1/3/5 (share of valid pixels with EPE below 1/3/5 px) and F1 (share with
    EPE > 3 px and > 5% of the true flow magnitude), all over the valid pixels of all pairs.
    pred, gt (B, 2, H, W) in pixels; mask (B, H, W) bool."""
    if pred.shape != gt.shape or mask.shape != gt[:, 0].shape:
        raise ValueError(f"shapes differ: pred {tuple(pred.shape)}, gt {tuple(gt.shape)}, mask {tuple(mask.shape)}")
    epe = channel_norm(pred - gt)[mask]
    mag = channel_norm(gt)[mask]
    if epe.numel() == 0:
        raise ValueError("no valid pixel in mask")
    out = {"aepe": epe.mean().item()}
    for t in (1, 3, 5):
        out[f"pck{t}"] = (epe < t).float().mean().item()
    out["f1"] = ((epe > 3) & (epe > 0.05 * mag)).float().mean().item()
    out["valid_pixels"] = int(epe.numel())
    return out


def coarse_truth(flow: Tensor, mask: Tensor, cells: int) -> tuple[Tensor, Tensor]:
    """The true match of every cell of a ``cells``×``cells`` global grid: its position on the
    query (source) grid in cells, continuous (B, 2, g, g) = (x, y), from the flow averaged over
    the cell; and which cells are valid (B, g, g): mostly valid pixels, true match inside."""
    c = flow.shape[-1] / cells
    flow_g = F.adaptive_avg_pool2d(flow, cells) / c
    frac = F.adaptive_avg_pool2d(mask[:, None].float(), cells)[:, 0]
    pos = pixel_grid(cells, cells, flow_g) + flow_g
    inside = (pos > -0.5).all(1) & (pos < cells - 0.5).all(1)
    return pos, (frac > 0.5) & inside


def coarse_outcomes(volume: Tensor, flow: Tensor, mask: Tensor, period: Tensor | None = None) -> dict[str, Tensor]:
    """Per cell of the global grid (B, g, g), bool: ``valid``, ``exact`` (the argmax is the true
    cell), ``within1`` (at most one cell off) and, with the lattice ``period`` (B, 2) in pixels,
    ``copy``: more than one cell off, and on the cell nearest to the truth moved by a non-zero
    multiple of the period (within half a cell per axis; a random wrong cell meets this about once
    per period² cells, so the rule is only meaningful for periods of a few cells).
    volume (B, g·g, g, g); flow (B, 2, H, W); mask (B, H, W)."""
    g = volume.shape[-1]
    pos, valid = coarse_truth(flow, mask, g)
    arg = volume.argmax(1)
    found = torch.stack([arg % g, arg // g], 1).to(pos.dtype)
    cell_err = (found - pos.round()).abs().amax(1)
    out = {"valid": valid, "exact": cell_err == 0, "within1": cell_err <= 1}
    if period is not None:
        per = (period.to(pos.dtype) * g / flow.shape[-1]).view(-1, 2, 1, 1)     # in cells
        err = found - pos
        k = (err / per).round()
        out["copy"] = (k != 0).any(1) & ((err - k * per).abs() <= 0.5).all(1) & (cell_err > 1)
    return out


def coarse_metrics(volume: Tensor, flow: Tensor, mask: Tensor, period: Tensor | None = None) -> dict[str, float]:
    """The shares of valid cells of :func:`coarse_outcomes`: ``coarse_acc`` (exact),
    ``coarse_acc1`` (within one cell) and, with the period, ``copy_rate``."""
    o = coarse_outcomes(volume, flow, mask, period)
    valid = o["valid"]
    if not valid.any():
        raise ValueError("no valid cell at the global level")
    out = {"coarse_acc": o["exact"][valid].float().mean().item(),
           "coarse_acc1": o["within1"][valid].float().mean().item()}
    if "copy" in o:
        out["copy_rate"] = o["copy"][valid].float().mean().item()
    out["valid_cells"] = int(valid.sum())
    return out
