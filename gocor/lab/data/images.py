"""The pictures pairs are cut from: scikit-image's bundled images (see data/README.md for
licences; some held out from training) and procedural periodic textures, the repetitive case
where correlation is ambiguous."""
from __future__ import annotations

import math
from functools import lru_cache, partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .sampling import uniform

rand64 = partial(uniform, dtype=torch.float64)         # the pairs' draws are float64

# name -> licence, as stated in scikit-image's docstrings
IMAGES = {
    "astronaut": "public domain (NASA)", "brick": "CC0", "grass": "CC0", "gravel": "CC0",
    "coffee": "CC0", "chelsea": "CC0", "rocket": "public domain (SpaceX)", "camera": "CC0",
    "coins": "no known copyright restrictions", "text": "public domain", "clock": "public domain",
    "hubble_deep_field": "public domain (NASA)", "immunohistochemistry": "no known copyright restrictions",
    "retina": "CC0",
}
TEST_IMAGES = ("coffee", "rocket", "retina")            # held out from training
TRAIN_IMAGES = tuple(n for n in IMAGES if n not in TEST_IMAGES)
# more held-out pictures, used only by the large-motion test split: every other usable picture the
# installed wheels ship (skimage's "cat" is "chelsea", a training picture, so it is not one of them)
MORE_TEST_IMAGES = {
    "moon": "no licence stated (scikit-image)", "page": "no licence stated (scikit-image)",
    "cell": "no licence stated (scikit-image)", "grace_hopper": "public domain (US Navy; matplotlib sample data)",
}
LARGE_MOTION_TEST_IMAGES = TEST_IMAGES + tuple(MORE_TEST_IMAGES)
TEXTURES = ("stripes", "checker", "dots", "bricks", "hexagons")
# texture families held out as families: the large-motion training mix and its validation split
# draw only TRAIN_TEXTURES, its test split only TEST_TEXTURES
TRAIN_TEXTURES = ("stripes", "checker", "bricks")
TEST_TEXTURES = ("dots", "hexagons")

@lru_cache(maxsize=None)
def load_image(name: str) -> Tensor:
    """A bundled scikit-image picture as float (3, H, W) in [0, 1], short side 256."""
    if name == "grace_hopper":
        import matplotlib.cbook
        import matplotlib.image
        im = matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))
    else:
        import skimage.data
        im = getattr(skimage.data, name)()
    im = np.asarray(im, dtype=np.float32)
    if im.max() > 1.5:
        im = im / 255.0
    t = torch.from_numpy(im)
    t = t.unsqueeze(0).expand(3, -1, -1) if t.dim() == 2 else t[..., :3].permute(2, 0, 1)
    scale = 256 / min(t.shape[-2:])
    return F.interpolate(t[None], scale_factor=scale, mode="area" if scale < 1 else "bilinear",
                         align_corners=None if scale < 1 else False)[0].contiguous()


def texture(kind: str, size: int, gen: torch.Generator) -> Tensor:
    """A procedural periodic texture (3, size, size) in [0, 1]."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64),
                          torch.arange(size, dtype=torch.float64), indexing="ij")
    theta = math.pi * rand64(gen).item()
    period = 5.0 + 7.0 * rand64(gen).item()
    u = (x * math.cos(theta) + y * math.sin(theta)) / period
    v = (-x * math.sin(theta) + y * math.cos(theta)) / period
    if kind == "stripes":
        base = 0.5 + 0.5 * torch.sin(2 * math.pi * u)
    elif kind == "checker":
        base = ((torch.floor(u) + torch.floor(v)) % 2).double()
    elif kind == "dots":
        d = (u - torch.round(u)) ** 2 + (v - torch.round(v)) ** 2
        base = (d < 0.08 + 0.1 * rand64(gen).item()).double()
    elif kind == "bricks":
        row = torch.floor(v)
        uu = u + 0.5 * (row % 2)
        base = (((uu - torch.floor(uu)) > 0.08) & ((v - row) > 0.12)).double()
    elif kind == "hexagons":
        a = u + v / 2
        b = v * math.sqrt(3) / 2
        base = 0.5 + (torch.cos(2 * math.pi * a) + torch.cos(2 * math.pi * b)
                      + torch.cos(2 * math.pi * (a - b))) / 6
    else:
        raise ValueError(f"unknown texture {kind!r}; choose from {TEXTURES}")
    c0, c1 = rand64(gen, 3, 1, 1), rand64(gen, 3, 1, 1)
    img = c0 + (c1 - c0) * base
    img = img + 0.03 * torch.randn(img.shape, generator=gen, dtype=torch.float64)
    return img.clamp(0, 1).float()
