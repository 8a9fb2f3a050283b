"""A small GLU-Net-like matcher whose correlation layers can be swapped for GOCor.

    image pair -> CNN feature pyramid (1/2, 1/4, 1/8)
    global level (the 1/8 features resized to a fixed grid of ``image_size // 8`` cells, as
        GLU-Net fixes its global level): global volume (feature correlation | GlobalGOCor)
        -> soft-argmax + CNN -> flow, resized back to 1/8
    1/4, 1/2: warp source features by the upsampled flow, local volume
              (local correlation | LocalGOCor) -> CNN -> residual flow

The target is the reference (the flow lives on its grid), the source is the query.
Every variant has the same backbone and decoders; only the correlation modules differ.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ...correlation import global_correlation, local_correlation
from ...module import LOCAL_DEFAULTS, GOCorConfig, GlobalGOCor, LocalGOCor
from .channels import channel_norm, normalize_channels
from ..data.flow import pixel_grid, resize_flow, warp
from .volume_post import VolumePost


STRIDES = (2, 4, 8)                     # of the feature pyramid's levels
COARSEST = STRIDES[-1]
SEARCH_RADIUS = 3                       # of the local levels' windows: 7 × 7
# the layer's own config per level, as the matcher uses it by default: global GOCor with the
# paper's GLU-Net-GOCor settings; local GOCor with the layer's local defaults on the matcher's
# window, its (optional) query loss with a small prior R: 1 -> 4 -> 4 channels
GLOBAL_LEVEL = GOCorConfig().for_kind("global")
LOCAL_LEVEL = LOCAL_DEFAULTS.replace(search_radius=SEARCH_RADIUS, prior_inter_dim=4, prior_output_dim=4)


@dataclass(frozen=True)
class MatcherConfig:
    global_level: GOCorConfig | None = None     # None: feature correlation; else GlobalGOCor with this config
    local_level: GOCorConfig | None = None      # None: local correlation; else LocalGOCor (both levels) with this
    post_process: bool = False          # correlation volumes + a learned 4D post-processing (the control)
    global_flow: bool = True            # False: the global level's flow is zero (the local levels alone: a control)
    channels: tuple[int, int, int] = (16, 32, 64)
    search_radius: int = SEARCH_RADIUS  # of the local windows (a local GOCor level uses the same)
    image_size: int = 64                # training images (square); fixes the global level's grid

    def __post_init__(self):
        for name in ("global_level", "local_level"):
            level = getattr(self, name)
            if level is not None and not isinstance(level, GOCorConfig):
                raise TypeError(f"{name} must be a GOCorConfig or None, got {type(level).__name__}")
        if self.post_process and (self.global_level or self.local_level):
            raise ValueError("post_process is the control for plain correlation volumes: it needs "
                             "global_level=None and local_level=None")
        if self.local_level is not None and self.local_level.search_radius != self.search_radius:
            raise ValueError(f"local_level.search_radius ({self.local_level.search_radius}) must equal the "
                             f"matcher's search_radius ({self.search_radius})")
        if self.image_size <= 0 or self.image_size % COARSEST:
            raise ValueError(f"image_size must be a positive multiple of {COARSEST}, got {self.image_size}")

    @classmethod
    def build(cls, global_gocor: Mapping | None = None, local_gocor: Mapping | None = None,
              post_process: bool = False, **fields) -> "MatcherConfig":
        """A config from the changes to :data:`GLOBAL_LEVEL` / :data:`LOCAL_LEVEL` per level
        (None: correlation at that level), as :data:`gocor.lab.runs.variants.VARIANTS` names them."""
        radius = fields.get("search_radius", SEARCH_RADIUS)
        return cls(global_level=None if global_gocor is None else GLOBAL_LEVEL.replace(**global_gocor),
                   local_level=None if local_gocor is None else
                   LOCAL_LEVEL.replace(search_radius=radius).replace(**local_gocor),
                   post_process=post_process, **fields)

    @property
    def global_cells(self) -> int:
        """Side of the global level's grid: the 1/8 grid of a training image."""
        return self.image_size // COARSEST

    @property
    def solver_steps(self) -> int | None:
        """The solver steps of the GOCor levels (global first), None without GOCor."""
        level = self.global_level or self.local_level
        return None if level is None else level.num_iter

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "MatcherConfig":
        """Inverse of :meth:`to_dict`; also reads the flat form of checkpoints written before the
        per-level configs (``global_corr``, ``local_corr``, ``gocor_steps``, ...)."""
        d = dict(d)
        if "global_corr" in d or "local_corr" in d:
            return cls._from_flat(d)
        level = lambda v: None if v is None else GOCorConfig(**v)
        return cls(global_level=level(d.pop("global_level", None)), local_level=level(d.pop("local_level", None)),
                   channels=tuple(d.pop("channels", (16, 32, 64))), **d)

    @classmethod
    def _from_flat(cls, d: dict) -> "MatcherConfig":
        """The flat fields and their defaults then, built into the levels exactly as the matcher
        built its modules from them."""
        steps, radius = d.pop("gocor_steps", 3), d.get("search_radius", SEARCH_RADIUS)
        glob, loc = d.pop("global_corr", "corr"), d.pop("local_corr", "corr")
        g_lq, g_init = d.pop("global_query_loss", True), d.pop("global_initializer", "flexible_context")
        l_lq = d.pop("local_query_loss", False)
        for name, value in (("global_corr", glob), ("local_corr", loc)):
            if value not in ("corr", "gocor"):
                raise ValueError(f"{name} must be 'corr' or 'gocor', got {value!r}")
        return cls(global_level=GOCorConfig(num_iter=steps, query_loss=g_lq, initializer=g_init) if glob == "gocor" else None,
                   local_level=LOCAL_LEVEL.replace(search_radius=radius, num_iter=steps, query_loss=l_lq)
                   if loc == "gocor" else None, channels=tuple(d.pop("channels", (16, 32, 64))), **d)


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
        self.global_gocor = GlobalGOCor(c8, config.global_level) if config.global_level is not None else None
        self.local_gocor = nn.ModuleList([LocalGOCor(c, config.local_level) for c in (c4, c2)]
                                         ) if config.local_level is not None else None
        n_global = config.global_cells ** 2             # query positions at the global level
        self.beta = nn.Parameter(torch.tensor(10.0))
        self.global_decoder = nn.Sequential(conv(n_global + 2 + c8, 64), conv(64, 48), conv(48, 32), nn.Conv2d(32, 2, 3, 1, 1))
        # the control: about the parameters GOCor adds (its global prior; small local ones)
        self.global_post = VolumePost(3, 16, 16) if config.post_process else None
        self.local_post = nn.ModuleList([VolumePost(3, 4, 2) for _ in (c4, c2)]) if config.post_process else None
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
        vol = vol / channel_norm(vol, keepdim=True).clamp_min(1e-6)      # GLU-Net's volume normalization
        return vol if self.global_post is None else self.global_post(vol, query.shape[-2:])

    def _local_volume(self, level: int, ref: Tensor, query: Tensor) -> Tensor:
        if self.local_gocor is not None:
            return self.local_gocor[level](ref, query)
        vol = local_correlation(ref, query, self.config.search_radius)
        k = 2 * self.config.search_radius + 1
        return vol if self.local_post is None else self.local_post[level](vol, (k, k))

    def pyramids(self, source: Tensor, target: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """L2-normalized feature pyramids (source, target), each [1/2, 1/4, 1/8]."""
        for name, img in (("source", source), ("target", target)):
            if img.dim() != 4 or img.shape[1] != 3 or img.shape[-1] % COARSEST or img.shape[-2] % COARSEST:
                raise ValueError(f"{name} must be (B, 3, H, W) with H and W multiples of {COARSEST}, "
                                 f"got {tuple(img.shape)}")
        fs = [normalize_channels(f) for f in self.features(self._normalize(source))]
        ft = [normalize_channels(f) for f in self.features(self._normalize(target))]
        return fs, ft

    def global_features(self, feat: Tensor) -> Tensor:
        """1/8 features (B, C, h, w) on the global grid (B, C, g, g), g = ``config.global_cells``
        (unchanged when already that size)."""
        g = self.config.global_cells
        if feat.shape[-2:] == (g, g):
            return feat
        return normalize_channels(F.interpolate(feat, size=(g, g), mode="bilinear", align_corners=False,
                                                antialias=True))

    def global_volume(self, source: Tensor, target: Tensor) -> Tensor:
        """The global volume (B, g·g, g, g): target = reference, source = query."""
        fs, ft = self.pyramids(source, target)
        return self._global_volume(self.global_features(ft[2]), self.global_features(fs[2]))

    def forward(self, source: Tensor, target: Tensor) -> list[Tensor]:
        return self.flows_and_volume(source, target)[0]

    def flows_and_volume(self, source: Tensor, target: Tensor) -> tuple[list[Tensor], Tensor]:
        """The flows [1/8, 1/4, 1/2] of :meth:`forward` and the global volume they start from."""
        fs, ft = self.pyramids(source, target)
        ref, query = self.global_features(ft[2]), self.global_features(fs[2])
        vol = self._global_volume(ref, query)
        if self.config.global_flow:
            init = soft_argmax_flow(vol, query.shape[-2:], self.beta)
            flow = init + self.global_decoder(torch.cat([vol, init, ref], 1))
        else:                               # the control without a global level: start from no motion
            flow = ref.new_zeros(ref.shape[0], 2, *ref.shape[-2:])
        if flow.shape[-2:] != ft[2].shape[-2:]:
            flow = resize_flow(flow, ft[2].shape[-2:])
        flows = [flow]
        for level, (f_t, f_s) in enumerate(zip((ft[1], ft[0]), (fs[1], fs[0]))):
            flow = resize_flow(flow, f_t.shape[-2:])
            local = self._local_volume(level, f_t, warp(f_s, flow))
            flow = flow + self.local_decoders[level](torch.cat([local, f_t, flow], 1))
            flows.append(flow)
        return flows, vol

    def predict(self, source: Tensor, target: Tensor) -> Tensor:
        """Flow (B, 2, H, W) at image resolution, in the kit's convention."""
        return resize_flow(self(source, target)[-1], source.shape[-2:])


def multiscale_loss(flows: list[Tensor], gt: Tensor, mask: Tensor, weights=(0.5, 0.75, 1.0)) -> Tensor:
    """Σ_l w_l · mean end-point error over valid pixels, each level upsampled to image size."""
    m = mask.float()
    denom = m.sum().clamp_min(1.0)
    loss = 0.0
    for w, flow in zip(weights, flows):
        epe = channel_norm(resize_flow(flow, gt.shape[-2:]) - gt)
        loss = loss + w * (epe * m).sum() / denom
    return loss
