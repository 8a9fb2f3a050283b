"""What turns a picture into a pair: a random crop, a random smooth warp (homography, thin-plate
spline, elastic; kornia) as an exact target -> source mapping, photometric jitter, and an
independently moving foreground object ("dynamic")."""
from __future__ import annotations

import kornia.filters as KF
import kornia.geometry.linalg as KL
import kornia.geometry.transform as KT
import torch
import torch.nn.functional as F
from torch import Tensor

from .flow import remap
from .images import load_image, rand64
from .sampling import corners, inside, pixel_points


def crop(img: Tensor, size: int, scale: float, gen: torch.Generator) -> Tensor:
    """A random square crop of (C, H, W) ``img``, ``scale`` × ``size`` on a side (at most the
    image), resized to (C, size, size)."""
    side = min(int(round(size * scale)), *img.shape[-2:])
    top = int(rand64(gen).item() * (img.shape[-2] - side + 1))
    left = int(rand64(gen).item() * (img.shape[-1] - side + 1))
    patch = img[:, top:top + side, left:left + side]
    return F.interpolate(patch[None], size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)[0]


def random_warp(size: int, homography: float, tps: float, elastic: float, gen: torch.Generator) -> Tensor:
    """Target pixel coords -> source pixel coords, (size, size, 2), as an exact function:
    homography (corner jitter ``homography`` × size), thin-plate spline (control-point jitter
    ``tps`` × size), both, or both plus a smooth elastic field of amplitude ``elastic`` px."""
    s = size
    pts = pixel_points(s)
    kind = int(rand64(gen).item() * 4)                    # 0 H, 1 TPS, 2 H+TPS, 3 H+TPS+elastic
    if kind in (0, 2, 3):
        square = corners(s)
        moved = square + (homography * s) * (2 * rand64(gen, 1, 4, 2).float() - 1)
        hom = KT.get_perspective_transform(square, moved)
        pts = KL.transform_points(hom, pts)
    if kind in (1, 2, 3):
        c = torch.linspace(-1, 1, 3)
        ctrl = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).view(1, -1, 2)
        dst = ctrl + 2 * tps * (2 * rand64(gen, 1, 9, 2).float() - 1)
        kernel, affine = KT.get_tps_transform(ctrl, dst)
        norm = pts / (s - 1) * 2 - 1
        pts = (KT.warp_points_tps(norm, dst, kernel, affine) + 1) / 2 * (s - 1)
    pts = pts.view(s, s, 2)
    if kind == 3:
        noise = torch.randn(1, 2, s, s, generator=gen).float()
        smooth = KF.gaussian_blur2d(noise, (17, 17), (4.0, 4.0))
        smooth = smooth / smooth.abs().amax().clamp_min(1e-6) * elastic
        pts = pts + smooth[0].permute(1, 2, 0)
    return pts


def photometric(img: Tensor, gen: torch.Generator) -> Tensor:
    """Per-channel gain, a bias and a gamma on (3, H, W) ``img`` in [0, 1]."""
    gain = 0.8 + 0.4 * rand64(gen, 3, 1, 1).float()
    bias = 0.1 * (2 * rand64(gen, 1, 1, 1).float() - 1)
    gamma = 0.8 + 0.4 * rand64(gen).item()
    return (img.clamp(0, 1) ** gamma * gain + bias).clamp(0, 1)


def add_object(source: Tensor, target: Tensor, flow: Tensor, mask: Tensor, gen: torch.Generator,
               images: tuple[str, ...]) -> Tensor:
    """Paste an independently moving elliptical object cut from one of ``images`` into a square
    pair (in place): source, target (3, S, S), flow (2, S, S), mask (S, S). Returns the object's
    pixels on the target grid (S, S) bool."""
    s = flow.shape[-1]
    name = images[int(rand64(gen).item() * len(images))]
    r = int(s * (0.15 + 0.1 * rand64(gen).item()))
    patch = crop(load_image(name), 2 * r, 1.0, gen)
    yy, xx = torch.meshgrid(torch.arange(2 * r), torch.arange(2 * r), indexing="ij")
    alpha = (((yy - r + 0.5) / r) ** 2 + ((xx - r + 0.5) / r) ** 2 <= 1).float()
    ty, tx = (int(rand64(gen).item() * (s - 2 * r)) for _ in range(2))
    dx, dy = (int(round((2 * rand64(gen).item() - 1) * s * 0.15)) for _ in range(2))
    sy, sx = min(max(ty + dy, 0), s - 2 * r), min(max(tx + dx, 0), s - 2 * r)
    dy, dx = sy - ty, sx - tx
    # background target pixels whose source point the object now covers are occluded
    sx_all, sy_all = flow[0] + torch.arange(s), flow[1] + torch.arange(s)[:, None]
    cover = torch.zeros(s, s)
    cover[sy:sy + 2 * r, sx:sx + 2 * r] = alpha
    src_xy = torch.stack([sx_all, sy_all], -1)
    hit = remap(cover[None, None], src_xy[None])[0, 0] > 0.01
    mask &= ~(hit & inside(src_xy, s))
    src_reg = source[:, sy:sy + 2 * r, sx:sx + 2 * r]
    source[:, sy:sy + 2 * r, sx:sx + 2 * r] = alpha * patch + (1 - alpha) * src_reg
    tgt_reg = target[:, ty:ty + 2 * r, tx:tx + 2 * r]
    target[:, ty:ty + 2 * r, tx:tx + 2 * r] = alpha * patch + (1 - alpha) * tgt_reg
    obj = alpha > 0
    flow[0, ty:ty + 2 * r, tx:tx + 2 * r][obj] = float(dx)
    flow[1, ty:ty + 2 * r, tx:tx + 2 * r][obj] = float(dy)
    mask[ty:ty + 2 * r, tx:tx + 2 * r] |= obj
    on_target = torch.zeros(s, s, dtype=torch.bool)
    on_target[ty:ty + 2 * r, tx:tx + 2 * r] = obj
    return on_target
