"""Metrics at image resolution over valid pixels, and evaluation of a checkpoint on a split
or on any user's pairs (.npz)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.channels import channel_norm
from .checkpoint import load_matcher
from ..data.pairs import PairConfig, held_out_split
from ..data.flow import pixel_grid, resize_flow
from ..models.matcher import Matcher


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


@torch.no_grad()
def batched(fn, source: Tensor, target: Tensor, device: torch.device, batch_size: int = 32) -> list:
    """``fn(source_batch, target_batch)`` over (N, 3, H, W) pairs in batches on ``device``, its
    outputs (a tensor or a tuple of tensors) moved back to the CPU, one entry per batch."""
    out = []
    for i in range(0, len(source), batch_size):
        r = fn(source[i:i + batch_size].to(device), target[i:i + batch_size].to(device))
        out.append(tuple(t.cpu() for t in r) if isinstance(r, tuple) else r.cpu())
    return out


def predict(model: Matcher, source: Tensor, target: Tensor, batch_size: int = 32) -> Tensor:
    """Flow at image resolution for (N, 3, H, W) pairs, batched, on the model's device."""
    model.eval()
    return torch.cat(batched(model.predict, source, target, next(model.parameters()).device, batch_size))


def load_pairs(path: str | Path, size: int) -> dict[str, Tensor]:
    """A user's pairs: .npz with source, target (N, H, W, 3) uint8, flow (N, H, W, 2) float
    (target grid, see :mod:`gocor.lab.flow`), mask (N, H, W) bool. Resized to size x size (the
    matcher's training size), flow scaled. Raises ValueError naming the file and the array."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz archive (expected a numpy.savez file)")
    try:
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in ("source", "target", "flow", "mask")}
    except KeyError as e:
        raise ValueError(f"{path}: missing array {e}; expected source, target, flow, mask") from None
    except Exception as e:
        raise ValueError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
    if arrays["mask"].ndim != 3:
        raise ValueError(f"{path}: mask has shape {arrays['mask'].shape}, expected (N, H, W)")
    n, h, w = arrays["mask"].shape
    for k, shape in (("source", (n, h, w, 3)), ("target", (n, h, w, 3)), ("flow", (n, h, w, 2))):
        if arrays[k].shape != shape:
            raise ValueError(f"{path}: {k} has shape {arrays[k].shape}, expected {shape}")
    for k in ("source", "target"):
        if arrays[k].dtype != np.uint8:
            raise ValueError(f"{path}: {k} has dtype {arrays[k].dtype}, expected uint8 (0-255); "
                             f"for float images in [0, 1] save (img * 255).round().astype(np.uint8)")
    if arrays["mask"].dtype != np.bool_:
        raise ValueError(f"{path}: mask has dtype {arrays['mask'].dtype}, expected bool")
    if not np.issubdtype(arrays["flow"].dtype, np.floating):
        raise ValueError(f"{path}: flow has dtype {arrays['flow'].dtype}, expected float")
    mask = arrays["mask"]
    if not mask.any():
        raise ValueError(f"{path}: no valid pixel in mask")
    bad = ~np.isfinite(arrays["flow"]).all(-1) & mask
    if bad.any():
        raise ValueError(f"{path}: flow is not finite (NaN or inf) at {int(bad.sum())} valid pixels "
                         f"(mask True); set mask False there")
    img = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0
    source, target = img(arrays["source"]), img(arrays["target"])
    flow = arrays["flow"].astype(np.float32)
    flow = torch.from_numpy(np.where(np.isfinite(flow), flow, 0)).permute(0, 3, 1, 2)   # NaN only where masked
    mask = torch.from_numpy(mask)
    if (h, w) != (size, size):
        resize = lambda t: F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        source, target = resize(source), resize(target)
        flow = resize_flow(flow, (size, size))
        mask = F.interpolate(mask[:, None].float(), size=(size, size), mode="nearest")[:, 0] > 0.5
        if not mask.any():
            raise ValueError(f"{path}: no valid pixel in mask after resizing to {size}x{size}")
    return {"source": source, "target": target, "flow": flow, "mask": mask}


def evaluate(model: Matcher, pairs: dict[str, Tensor], batch_size: int = 32) -> dict[str, float]:
    """Flow metrics at image resolution and coarse metrics of the global volume (one pass)."""
    model.eval()

    def flow_and_volume(source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        flows, volume = model.flows_and_volume(source, target)
        return resize_flow(flows[-1], source.shape[-2:]), volume

    out = batched(flow_and_volume, pairs["source"], pairs["target"], next(model.parameters()).device, batch_size)
    pred, volume = (torch.cat(parts) for parts in zip(*out))
    return (flow_metrics(pred, pairs["flow"], pairs["mask"])
            | coarse_metrics(volume, pairs["flow"], pairs["mask"], pairs.get("period")))


def evaluate_checkpoint(path: str | Path, split: str | None = "standard", pairs: str | Path | None = None,
                        device: str | torch.device | None = None) -> dict:
    model, info = load_matcher(path, device)
    size = model.config.image_size
    data = (load_pairs(pairs, size) if pairs is not None          # the near-repetitive split is 128 px
            else held_out_split(split, PairConfig(size=size, photometric=False)))
    result = evaluate(model, data)
    result.update({"checkpoint": str(path), "data": str(pairs) if pairs is not None else split,
                   "model": info["matcher_config"]})
    return result
