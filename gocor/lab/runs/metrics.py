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


def per_pair_metrics(pred: Tensor, gt: Tensor, mask: Tensor, volume: Tensor | None = None) -> dict[str, list[float]]:
    """The metrics of :func:`flow_metrics` (and, with the global ``volume``, the coarse accuracies
    of :func:`coarse_metrics`) of every pair on its own: lists of length B, NaN where a pair has
    no valid pixel (cell). pred, gt (B, 2, H, W); mask (B, H, W); volume (B, g·g, g, g)."""
    if pred.shape != gt.shape or mask.shape != gt[:, 0].shape:
        raise ValueError(f"shapes differ: pred {tuple(pred.shape)}, gt {tuple(gt.shape)}, mask {tuple(mask.shape)}")
    m = mask.float()
    n = m.sum((1, 2))
    mean = lambda x: torch.where(n > 0, (x.float() * m).sum((1, 2)) / n.clamp_min(1), torch.nan)
    epe = channel_norm(pred - gt)
    out = {"aepe": mean(epe)}
    for t in (1, 3, 5):
        out[f"pck{t}"] = mean(epe < t)
    out["f1"] = mean((epe > 3) & (epe > 0.05 * channel_norm(gt)))
    if volume is not None:
        o = coarse_outcomes(volume, gt, mask)
        v = o["valid"].float()
        nv = v.sum((1, 2))
        for key, name in (("exact", "coarse_acc"), ("within1", "coarse_acc1")):
            out[name] = torch.where(nv > 0, (o[key].float() * v).sum((1, 2)) / nv.clamp_min(1), torch.nan)
    return {k: v.tolist() for k, v in out.items()}


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


def _copy_cells(found: Tensor, pos: Tensor, per: Tensor) -> Tensor:
    """Which ``found`` cells (..., 2) count as a copy of the true position ``pos`` (..., 2) for a
    lattice ``per`` (..., 2) in cells — the rule of :func:`coarse_outcomes`."""
    err = found - pos
    k = (err / per).round()
    return (k != 0).any(-1) & ((err - k * per).abs() <= 0.5).all(-1) & ((found - pos.round()).abs().amax(-1) > 1)


def coarse_chance(flow: Tensor, mask: Tensor, cells: int, period: Tensor | None = None) -> dict[str, float]:
    """What a volume whose argmax is uniformly random over the ``cells``×``cells`` grid scores on
    the same pairs, exactly (no sampling): ``chance_coarse_acc`` = 1 / cells², ``chance_coarse_acc1``
    (the share of the grid within one cell of each truth) and, with ``period``, ``chance_copy_rate``
    (the share of the grid that counts as a copy). Averaged over the valid cells, as the metrics.
    flow (B, 2, H, W); mask (B, H, W); period (B, 2) in pixels."""
    pos, valid = coarse_truth(flow, mask, cells)
    if not valid.any():
        raise ValueError("no valid cell at the global level")
    g2 = cells * cells
    grid = pixel_grid(cells, cells, pos).flatten(1).t()                        # (g², 2): every cell
    p = pos.permute(0, 2, 3, 1)[valid]                                          # (N, 2) true positions
    near = ((grid[None] - p.round()[:, None]).abs().amax(-1) <= 1).sum(1) / g2
    out = {"chance_coarse_acc": 1.0 / g2, "chance_coarse_acc1": near.float().mean().item()}
    if period is not None:
        per = (period.to(pos.dtype) * cells / flow.shape[-1])[:, None, None, :].expand(-1, cells, cells, -1)[valid]
        copies = _copy_cells(grid[None], p[:, None], per[:, None]).sum(1) / g2
        out["chance_copy_rate"] = copies.float().mean().item()
    return out


def true_vs_copies(volume: Tensor, flow: Tensor, mask: Tensor, period: Tensor) -> dict[str, float]:
    """A copy-aware score that needs no argmax: over the valid cells that have at least one copy
    on the grid, the share where the true cell scores above every copy (``true_beats_copies``),
    and what a random volume gets (``chance_true_beats_copies``: 1 / (1 + number of copies),
    averaged). volume (B, g·g, g, g) with the query position in the channels; flow, mask as for
    :func:`coarse_outcomes`; period (B, 2) in pixels."""
    g = volume.shape[-1]
    pos, valid = coarse_truth(flow, mask, g)
    grid = pixel_grid(g, g, pos).flatten(1).t()                                  # (g², 2)
    per = (period.to(pos.dtype) * g / flow.shape[-1]).view(-1, 1, 1, 1, 2)
    p = pos.permute(0, 2, 3, 1)[..., None, :]                                    # (B, g, g, 1, 2)
    copy = _copy_cells(grid.view(1, 1, 1, -1, 2), p, per)                        # (B, g, g, g²)
    true_idx = (p[..., 0, 1].round() * g + p[..., 0, 0].round()).long().clamp(0, g * g - 1)
    scores = volume.permute(0, 2, 3, 1)                                          # (B, g, g, g²)
    true_score = scores.gather(-1, true_idx[..., None])[..., 0]
    best_copy = scores.masked_fill(~copy, float("-inf")).amax(-1)
    has = valid & copy.any(-1)
    if not has.any():
        raise ValueError("no valid cell with a copy on the grid")
    n_copies = copy.sum(-1)[has].to(pos.dtype)
    return {"true_beats_copies": (true_score > best_copy)[has].float().mean().item(),
            "chance_true_beats_copies": (1.0 / (1.0 + n_copies)).mean().item(),
            "cells_with_copies": int(has.sum())}
