"""Near-repetitive scenes: the case the paper's claim is about.

A facade is a lattice of near-identical windows (each with small differences: brightness, pane
colour, a curtain at its own height), a few distinctive elements (a bricked-up window, a lit
window, a door-coloured one) and a smooth shading across the wall (context). The period is at
least ~3 cells of a 16×16 global level (24–40 px of a 128 px image) and the warp shifts by up to
one period, so that a unique true match exists and a copy one period away is always a plausible
wrong one. The pair knows its period, so the evaluation can tell a copy from other errors.

Flow convention: :mod:`gocor.lab.data.flow`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import kornia.geometry.linalg as KL
import kornia.geometry.transform as KT
import torch
import torch.nn.functional as F
from torch import Tensor

from .flow import pixel_grid, remap
from .sampling import corners, inside, pixel_points, uniform


CUES = ("brightness", "tint", "curtain", "shading")     # what tells a window from its copies


@dataclass(frozen=True)
class FacadeConfig:
    size: int = 128                                 # square images, pixels
    period: tuple[float, float] = (0.19, 0.31)      # lattice period, fraction of the size
    shift: float = 1.0                              # translation, up to this many periods
    homography: float = 0.04                        # corner jitter, fraction of the size
    distinct: int = 2                               # distinctive elements per scene
    noise: float = 0.02
    # what tells one window from its copies (0 makes that cue vanish; the claim experiment scales them)
    brightness: float = 0.08                        # per-window brightness, ± this fraction
    tint: float = 0.06                              # per-window pane tint, ± this
    curtain: float = 0.6                            # spread of the curtains' heights (centred at 0.5)
    shading: float = 0.35                           # amplitude of the smooth shading across the wall

    def scaled(self, dose: float, cues: tuple[str, ...] = CUES) -> "FacadeConfig":
        """The same facades with the copy-distinguishing ``cues`` × ``dose``, every other cue and
        the distinctive elements removed: with all cues, 0 makes the copies identical (up to
        pixel noise), 1 makes them differ as in the default facades, 2 twice as much."""
        if dose < 0:
            raise ValueError(f"dose: expected >= 0, got {dose}")
        unknown = [c for c in cues if c not in CUES]
        if unknown:
            raise ValueError(f"cues: unknown {unknown}; choose from {CUES}")
        k = {c: (dose if c in cues else 0.0) for c in CUES}
        return replace(self, distinct=0, brightness=k["brightness"] * self.brightness, tint=k["tint"] * self.tint,
                       curtain=min(1.0, k["curtain"] * self.curtain), shading=k["shading"] * self.shading)


def facade(cfg: FacadeConfig, side: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """A facade (3, side, side) in [0, 1] and its lattice period (2,) = (px, py) in pixels."""
    lo, hi = cfg.period
    period = cfg.size * (lo + (hi - lo) * uniform(gen, 2))                  # (px, py)
    offset = period * uniform(gen, 2)
    xy = pixel_grid(side, side)                                            # (2, side, side)
    cell = torch.floor((xy - offset.view(2, 1, 1)) / period.view(2, 1, 1))
    local = (xy - offset.view(2, 1, 1)) / period.view(2, 1, 1) - cell     # in [0, 1) inside a cell
    n = int(side / period.min().item()) + 3
    idx = ((cell[1] + 1).clamp(0, n - 1) * n + (cell[0] + 1).clamp(0, n - 1)).long()

    wall, frame, pane, curtain = (uniform(gen, 3, 1, 1) for _ in range(4))
    pane = 0.35 * pane                                                     # panes darker than walls
    fw, fh = 0.55 + 0.15 * uniform(gen), 0.55 + 0.2 * uniform(gen)             # window size in the cell
    # small per-element differences
    bright = 1.0 + cfg.brightness * (2 * uniform(gen, n * n) - 1)
    tint = cfg.tint * (2 * uniform(gen, 3, n * n) - 1)
    curtain_level = (0.5 - cfg.curtain / 2) + cfg.curtain * uniform(gen, n * n)
    # a few distinctive elements: bricked up (wall), lit (bright pane), odd colour
    kinds = torch.zeros(n * n, dtype=torch.long)
    for _ in range(cfg.distinct):
        kinds[int(uniform(gen).item() * n * n)] = 1 + int(uniform(gen).item() * 3)
    odd = uniform(gen, 3, 1, 1)

    u, v = local[0], local[1]
    bx, by = (1 - fw) / 2, (1 - fh) / 2
    in_frame = (u > bx) & (u < 1 - bx) & (v > by) & (v < 1 - by)
    m = 0.06
    in_pane = (u > bx + m) & (u < 1 - bx - m) & (v > by + m) & (v < 1 - by - m)
    bars = ((u - 0.5).abs() < 0.025) | ((v - (by + 0.4 * fh)).abs() < 0.025)
    in_curtain = in_pane & (v < by + m + curtain_level[idx] * (fh - 2 * m))

    k = kinds[idx]
    pane_col = pane + tint[:, idx]
    pane_col = torch.where(k == 2, 0.6 + 0.4 * curtain, pane_col)          # lit window
    pane_col = torch.where(k == 3, odd, pane_col)                          # odd colour
    img = wall.expand(3, side, side).clone()
    img = torch.where(in_frame, frame, img)
    img = torch.where(in_pane & ~bars, pane_col, img)
    img = torch.where(in_curtain & ~bars & (k != 2), 0.5 * curtain + 0.5 * pane_col, img)
    img = torch.where((k == 1) & in_frame, wall * 0.9, img)                # bricked up
    img = img * bright[idx]
    shading = F.interpolate(uniform(gen, 1, 1, 4, 4), size=(side, side), mode="bicubic", align_corners=True)[0]
    img = img * ((0.8 + (0.35 - cfg.shading) / 2) + cfg.shading * shading) + cfg.noise * torch.randn(img.shape, generator=gen)
    return img.clamp(0, 1), period


def make_facade_pair(seed: int, cfg: FacadeConfig = FacadeConfig()) -> dict[str, Tensor]:
    """One pair: source, target (3, S, S); flow (2, S, S) on the target grid; mask (S, S);
    period (2,) = the source's lattice period (px, py) in pixels."""
    gen = torch.Generator().manual_seed(seed)
    s = cfg.size
    pad = int(cfg.size * cfg.period[1] * cfg.shift) + int(cfg.homography * s) + 2
    scene, period = facade(cfg, s + 2 * pad, gen)
    source = scene[:, pad:pad + s, pad:pad + s].contiguous()
    grid = pixel_points(s)                                                 # (1, N, 2)
    square = corners(s)
    moved = square + cfg.homography * s * (2 * uniform(gen, 1, 4, 2) - 1)
    coords = KL.transform_points(KT.get_perspective_transform(square, moved), grid).view(s, s, 2)
    coords = coords + cfg.shift * period * (2 * uniform(gen, 2) - 1)         # up to one period
    target = remap(scene[None], (coords + pad)[None])[0]                   # content everywhere
    flow = (coords - grid.view(s, s, 2)).permute(2, 0, 1).contiguous()
    mask = inside(coords, s)
    return {"source": source, "target": target, "flow": flow, "mask": mask, "period": period}
