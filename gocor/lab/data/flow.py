"""Flow geometry shared by the data generator, the matcher and the evaluation.

Convention (everywhere in the kit): flow lives on the *target* grid; ``flow[:, y, x] = (u, v)``
in pixels means target pixel (x, y) corresponds to source pixel (x + u, y + v), so
``warp(source, flow)`` reproduces the target wherever the pair's mask is set.
"""
from __future__ import annotations

import kornia.geometry.transform as KT
import torch
import torch.nn.functional as F
from torch import Tensor


def pixel_grid(h: int, w: int, like: Tensor | None = None) -> Tensor:
    """Pixel coordinates (2, h, w): channel 0 is x, channel 1 is y (dtype/device of ``like``)."""
    kw = {"dtype": like.dtype, "device": like.device} if like is not None else {"dtype": torch.float32}
    ys, xs = torch.meshgrid(torch.arange(h, **kw), torch.arange(w, **kw), indexing="ij")
    return torch.stack([xs, ys])


def remap(image: Tensor, coords: Tensor) -> Tensor:
    """Sample image (B, C, H, W) at pixel coords (B, H', W', 2) = (x, y), bilinear, zeros outside."""
    return KT.remap(image, coords[..., 0], coords[..., 1], mode="bilinear", padding_mode="zeros",
                    align_corners=True, normalized_coordinates=False)


def warp(source: Tensor, flow: Tensor) -> Tensor:
    """Backward warp: (B, C, H, W) source, (B, 2, H, W) flow on the target grid -> target."""
    coords = pixel_grid(*flow.shape[-2:], like=flow) + flow
    return remap(source, coords.permute(0, 2, 3, 1))


def resize_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """Flow (B, 2, h, w) resized to ``size`` = (H, W), bilinear, its vectors scaled by H/h and W/w."""
    sy, sx = size[0] / flow.shape[-2], size[1] / flow.shape[-1]
    up = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    return up * torch.tensor([sx, sy], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)


def motion_stats(flow: Tensor, mask: Tensor, cell: float) -> dict[str, float]:
    """How far a split's pixels move: over the valid pixels of (B, 2, H, W) ``flow`` and (B, H, W)
    ``mask``, the median and 99th percentile of |flow| and the share moving more than ``cell``
    pixels (one cell of a global level that pools by ``cell``)."""
    if flow.dim() != 4 or flow.shape[1] != 2 or mask.shape != (flow.shape[0], *flow.shape[2:]):
        raise ValueError(f"flow, mask: expected (B, 2, H, W) and (B, H, W), got {tuple(flow.shape)} and {tuple(mask.shape)}")
    mag = flow.pow(2).sum(1).sqrt()[mask.bool()].double()
    if mag.numel() == 0:
        raise ValueError("mask: no valid pixel")
    return {"median": float(mag.median()), "p99": float(torch.quantile(mag, 0.99)),
            "beyond_cell": float((mag > cell).double().mean()), "valid": float(mask.double().mean())}
