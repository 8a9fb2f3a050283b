"""Evaluation of a matcher (:mod:`.metrics`: flow and coarse metrics in one pass), of a checkpoint
on a held-out split or on a user's pairs (.npz); and rebuilding a matcher from its checkpoint."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.flow import resize_flow
from ..data.pairs import PairConfig
from ..data.splits import held_out_split
from ..device import batched, default_device
from ..models.matcher import Matcher, MatcherConfig
from ..errors import UserError
from .checkpoint import CheckpointError, load
from .metrics import coarse_chance, coarse_metrics, flow_metrics, per_pair_metrics, true_vs_copies


def load_pairs(path: str | Path, size: int) -> dict[str, Tensor]:
    """A user's pairs: .npz with source, target (N, H, W, 3) uint8, flow (N, H, W, 2) float
    (target grid, see :mod:`gocor.lab.flow`), mask (N, H, W) bool. Resized to size x size (the
    matcher's training size), flow scaled. Raises :class:`~gocor.lab.errors.UserError` naming the
    file and the array."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not an .npz archive (expected a numpy.savez file)")
    try:
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in ("source", "target", "flow", "mask")}
    except KeyError as e:
        raise UserError(f"{path}: missing array {e}; expected source, target, flow, mask") from None
    except Exception as e:
        raise UserError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
    if arrays["mask"].ndim != 3:
        raise UserError(f"{path}: mask has shape {arrays['mask'].shape}, expected (N, H, W)")
    n, h, w = arrays["mask"].shape
    for k, shape in (("source", (n, h, w, 3)), ("target", (n, h, w, 3)), ("flow", (n, h, w, 2))):
        if arrays[k].shape != shape:
            raise UserError(f"{path}: {k} has shape {arrays[k].shape}, expected {shape}")
    for k in ("source", "target"):
        if arrays[k].dtype != np.uint8:
            raise UserError(f"{path}: {k} has dtype {arrays[k].dtype}, expected uint8 (0-255); "
                             f"for float images in [0, 1] save (img * 255).round().astype(np.uint8)")
    if arrays["mask"].dtype != np.bool_:
        raise UserError(f"{path}: mask has dtype {arrays['mask'].dtype}, expected bool")
    if not np.issubdtype(arrays["flow"].dtype, np.floating):
        raise UserError(f"{path}: flow has dtype {arrays['flow'].dtype}, expected float")
    mask = arrays["mask"]
    if not mask.any():
        raise UserError(f"{path}: no valid pixel in mask")
    bad = ~np.isfinite(arrays["flow"]).all(-1) & mask
    if bad.any():
        raise UserError(f"{path}: flow is not finite (NaN or inf) at {int(bad.sum())} valid pixels "
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
            raise UserError(f"{path}: no valid pixel in mask after resizing to {size}x{size}")
    return {"source": source, "target": target, "flow": flow, "mask": mask}


def evaluate(model: Matcher, pairs: dict[str, Tensor], batch_size: int = 32, per_pair: bool = False) -> dict:
    """Flow metrics at image resolution and coarse metrics of the global volume (one pass), each
    coarse metric with its chance level (a random volume on the same grid), on pairs that know
    their lattice ``period`` the share of cells where the true cell outscores every copy, and on
    pairs with a moving ``object`` the AEPE and F1 on the object and on the background apart.
    ``per_pair``: also ``per_pair``, the metrics of every pair (:func:`.metrics.per_pair_metrics`)."""
    model.eval()

    def flow_and_volume(source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        flows, volume = model.flows_and_volume(source, target)
        return resize_flow(flows[-1], source.shape[-2:]), volume

    out = batched(flow_and_volume, pairs["source"], pairs["target"], next(model.parameters()).device, batch_size)
    pred, volume = (torch.cat(parts) for parts in zip(*out))
    flow, mask, period = pairs["flow"], pairs["mask"], pairs.get("period")
    out = (flow_metrics(pred, flow, mask) | coarse_metrics(volume, flow, mask, period)
           | coarse_chance(flow, mask, volume.shape[-1], period))      # beside every coarse metric
    if period is not None:
        out |= true_vs_copies(volume, flow, mask, period)
    if "object" in pairs and pairs["object"].any():
        obj = pairs["object"].to(mask.device)
        for part, m in (("object", mask & obj), ("background", mask & ~obj)):
            part_metrics = flow_metrics(pred, flow, m)
            out |= {f"aepe_{part}": part_metrics["aepe"], f"f1_{part}": part_metrics["f1"]}
    if per_pair:
        out["per_pair"] = per_pair_metrics(pred, flow, mask, volume)
    return out


def evaluate_checkpoint(path: str | Path, split: str | None = "standard", pairs: str | Path | None = None,
                        device: str | torch.device | None = None, per_pair: bool = False) -> dict:
    """Metrics of the matcher at ``path`` on a held-out ``split`` or, when given, on the user's
    ``pairs`` (.npz, see :func:`load_pairs`), with the checkpoint, the data and the matcher's
    config (per level, :meth:`~gocor.lab.models.matcher.MatcherConfig.to_dict`)."""
    model, _ = load_matcher(path, device)
    size = model.config.image_size
    data = (load_pairs(pairs, size) if pairs is not None          # the near-repetitive split is 128 px
            else held_out_split(split, PairConfig(size=size, photometric=False)))
    result = evaluate(model, data, per_pair=per_pair)
    result.update({"checkpoint": str(path), "data": str(pairs) if pairs is not None else split,
                   "model": model.config.to_dict()})
    return result


def load_matcher(path: str | Path, device: str | torch.device | None = None) -> tuple[Matcher, dict]:
    """(model in eval mode on ``device``, the checkpoint's other entries). The matcher is rebuilt
    from the checkpoint's ``matcher_config``, per-level or (older checkpoints) flat."""
    device = default_device(device)
    obj = load(path, device)
    try:
        model = Matcher(MatcherConfig.from_dict(obj["matcher_config"]))
        model.load_state_dict(obj["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: checkpoint does not fit the matcher ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from None
    return model.to(device).eval(), obj


def object_effect(model: Matcher, n: int | None = None, per_pair: bool = False) -> dict:
    """Does a moving object change the matcher's error on the background around it? AEPE on the
    ``dynamic`` split's background pixels, with the object (the split itself) and on the very same
    pixels of the same pairs without it (``dynamic_without_objects``), and on the object.
    ``per_pair``: also ``per_pair``, those AEPEs of every pair and its object's size in pixels."""
    size = model.config.image_size
    cfg = PairConfig(size=size, photometric=False)
    with_obj = held_out_split("dynamic", cfg, n)
    without = held_out_split("dynamic_without_objects", cfg, n)
    background = with_obj["mask"] & ~with_obj["object"] & without["mask"]
    a = evaluate(model, {**with_obj, "mask": background, "object": torch.zeros_like(background)}, per_pair=per_pair)
    b = evaluate(model, {**without, "mask": background}, per_pair=per_pair)
    obj = with_obj["mask"] & with_obj["object"]
    o = evaluate(model, {**with_obj, "mask": obj, "object": torch.zeros_like(obj)}, per_pair=per_pair)
    out = {"background_with_object": a["aepe"], "background_without_object": b["aepe"],
           "object": o["aepe"], "background_pixels": int(background.sum())}
    if per_pair:
        out["per_pair"] = {"background_with_object": a["per_pair"]["aepe"],
                           "background_without_object": b["per_pair"]["aepe"],
                           "object": o["per_pair"]["aepe"], "object_pixels": obj.sum((1, 2)).tolist()}
    return out
