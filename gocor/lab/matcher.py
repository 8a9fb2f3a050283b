"""A small GLU-Net-like matcher whose correlation layers can be swapped for GOCor.

    image pair -> CNN feature pyramid (1/2, 1/4, 1/8)
    1/8: global volume (feature correlation | GlobalGOCor) -> soft-argmax + CNN -> flow
    1/4, 1/2: warp source features by the upsampled flow, local volume
              (local correlation | LocalGOCor) -> CNN -> residual flow

The target is the reference (the flow lives on its grid), the source is the query.
Every variant has the same backbone and decoders; only the correlation modules differ.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..correlation import global_correlation, local_correlation
from ..module import GlobalGOCor, LocalGOCor
from .flow import pixel_grid, resize_flow, warp


@dataclass(frozen=True)
class MatcherConfig:
    global_corr: str = "corr"           # "corr" | "gocor"
    local_corr: str = "corr"            # "corr" | "gocor"
    channels: tuple[int, int, int] = (16, 32, 64)
    search_radius: int = 3
    gocor_steps: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


CONFIGS = {
    "corr": MatcherConfig(),
    "gocor": MatcherConfig(global_corr="gocor", local_corr="gocor"),
    "gocor_global": MatcherConfig(global_corr="gocor"),
    "gocor_local": MatcherConfig(local_corr="gocor"),
}


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1))


class FeaturePyramid(nn.Module):
    """(B, 3, H, W) -> features at 1/2, 1/4, 1/8."""

    def __init__(self, channels: tuple[int, int, int]):
        super().__init__()
        c2, c4, c8 = channels
        self.level2 = nn.Sequential(conv(3, c2), conv(c2, c2, 2), conv(c2, c2))
        self.level4 = nn.Sequential(conv(c2, c4, 2), conv(c4, c4))
        self.level8 = nn.Sequential(conv(c4, c8, 2), conv(c8, c8))

    def forward(self, x: Tensor) -> list[Tensor]:
        f2 = self.level2(x)
        f4 = self.level4(f2)
        return [f2, f4, self.level8(f4)]


def soft_argmax_flow(volume: Tensor, query_size: tuple[int, int], beta: Tensor) -> Tensor:
    """Expected query position under softmax(beta · volume) minus the reference position."""
    b, _, h, w = volume.shape
    prob = torch.softmax(beta * volume, dim=1)                         # over query positions
    q = pixel_grid(*query_size, volume).flatten(1)                        # (2, N')
    expected = torch.einsum("cn,bnhw->bchw", q, prob)
    return expected - pixel_grid(h, w, volume)



class Matcher(nn.Module):
    """Dense flow target -> source: forward(source, target) -> flows [1/8, 1/4, 1/2] in pixels
    of their own level; :meth:`predict` gives the flow at image resolution."""

    def __init__(self, config: MatcherConfig = MatcherConfig()):
        super().__init__()
        self.config = config
        c2, c4, c8 = config.channels
        r = config.search_radius
        self.features = FeaturePyramid(config.channels)
        self.global_gocor = GlobalGOCor(c8, num_iter=config.gocor_steps) if config.global_corr == "gocor" else None
        self.local_gocor = nn.ModuleList(
            [LocalGOCor(c, search_radius=r, num_iter=config.gocor_steps) for c in (c4, c2)]
        ) if config.local_corr == "gocor" else None
        n8 = 64                                          # query positions at 1/8 of 64x64 training images
        self.beta = nn.Parameter(torch.tensor(10.0))
        self.global_decoder = nn.Sequential(conv(n8 + 2 + c8, 64), conv(64, 48), conv(48, 32), nn.Conv2d(32, 2, 3, 1, 1))
        d = (2 * r + 1) ** 2
        self.local_decoders = nn.ModuleList(
            [nn.Sequential(conv(d + c + 2, 64), conv(64, 48), conv(48, 32), nn.Conv2d(32, 2, 3, 1, 1))
             for c in (c4, c2)])

    @staticmethod
    def _normalize(img: Tensor) -> Tensor:
        return (img - 0.45) / 0.25

    def _global_volume(self, ref: Tensor, query: Tensor) -> Tensor:
        if self.global_gocor is not None:
            return self.global_gocor(ref, query)
        vol = F.relu(global_correlation(ref, query))
        return vol / vol.norm(dim=1, keepdim=True).clamp_min(1e-6)      # GLU-Net's volume normalization

    def _local_volume(self, level: int, ref: Tensor, query: Tensor) -> Tensor:
        if self.local_gocor is not None:
            return self.local_gocor[level](ref, query)
        return local_correlation(ref, query, self.config.search_radius)

    def pyramids(self, source: Tensor, target: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """L2-normalized feature pyramids (source, target), each [1/2, 1/4, 1/8]."""
        fs = [F.normalize(f, dim=1) for f in self.features(self._normalize(source))]
        ft = [F.normalize(f, dim=1) for f in self.features(self._normalize(target))]
        return fs, ft

    def global_volume(self, source: Tensor, target: Tensor) -> Tensor:
        """The coarse (1/8) volume (B, H'·W', H, W): target = reference, source = query."""
        fs, ft = self.pyramids(source, target)
        return self._global_volume(ft[2], fs[2])

    def forward(self, source: Tensor, target: Tensor) -> list[Tensor]:
        fs, ft = self.pyramids(source, target)
        vol = self._global_volume(ft[2], fs[2])
        expected = self.global_decoder[0][0].in_channels - 2 - ft[2].shape[1]
        if vol.shape[1] != expected:
            raise ValueError(f"the global decoder expects {expected} query positions at 1/8 "
                             f"(64x64 images), got {vol.shape[1]}")
        init = soft_argmax_flow(vol, fs[2].shape[-2:], self.beta)
        flow = init + self.global_decoder(torch.cat([vol, init, ft[2]], 1))
        flows = [flow]
        for level, (f_t, f_s) in enumerate(zip((ft[1], ft[0]), (fs[1], fs[0]))):
            flow = resize_flow(flow, f_t.shape[-2:])
            vol = self._local_volume(level, f_t, warp(f_s, flow))
            flow = flow + self.local_decoders[level](torch.cat([vol, f_t, flow], 1))
            flows.append(flow)
        return flows

    def predict(self, source: Tensor, target: Tensor) -> Tensor:
        """Flow (B, 2, H, W) at image resolution, in the kit's convention."""
        return resize_flow(self(source, target)[-1], source.shape[-2:])


def multiscale_loss(flows: list[Tensor], gt: Tensor, mask: Tensor, weights=(0.5, 0.75, 1.0)) -> Tensor:
    """Σ_l w_l · mean end-point error over valid pixels, each level upsampled to image size."""
    m = mask.float()
    denom = m.sum().clamp_min(1.0)
    loss = 0.0
    for w, flow in zip(weights, flows):
        epe = (resize_flow(flow, gt.shape[-2:]) - gt).norm(dim=1)
        loss = loss + w * (epe * m).sum() / denom
    return loss
