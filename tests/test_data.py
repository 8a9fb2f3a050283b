"""Synthetic pairs: the flow convention, determinism, splits."""
import subprocess
import sys

import pytest
import torch

from gocor.lab.data.images import IMAGES, TEST_IMAGES, TEXTURES, TRAIN_IMAGES, load_image, texture
from gocor.lab.data.pairs import PairConfig, make_pair
from gocor.lab.data.splits import held_out_split, make_batch
from gocor.lab.data.flow import warp


@pytest.mark.parametrize("seed", range(8))
def test_warping_source_by_flow_gives_target(seed):
    p = make_pair(seed, PairConfig(photometric=False))
    back = warp(p["source"][None], p["flow"][None])[0]
    m = p["mask"].expand(3, -1, -1)
    assert m.float().mean() > 0.5
    assert (back - p["target"])[m].abs().max() < 1e-4


def test_convention_on_a_hand_made_translation():
    """target(x, y) = source(x + 3, y - 2)  <=>  flow = (+3, -2)."""
    src = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    tgt = torch.zeros_like(src)
    tgt[..., 2:, :17] = src[..., :18, 3:]
    flow = torch.tensor([3.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, 20, 20)
    back = warp(src, flow)
    # float32 sampling at integer offsets: coordinates pass through [-1, 1] and back (~1e-6 off)
    assert torch.allclose(back[..., 2:, :17], tgt[..., 2:, :17], atol=1e-5)
    assert not torch.allclose(warp(src, -flow)[..., 2:, :17], tgt[..., 2:, :17], atol=1e-2)


def test_dynamic_objects_move_independently():
    cfg = PairConfig(photometric=False, dynamic=1.0)
    b = make_batch(range(6), cfg=cfg)
    back = warp(b["source"], b["flow"])
    m = b["mask"].unsqueeze(1).expand_as(back)
    assert (back - b["target"])[m].abs().mean() < 1e-3
    plain = make_batch(range(6), cfg=PairConfig(photometric=False))
    assert not torch.equal(plain["flow"], b["flow"])


def test_batches_are_pure_functions_of_their_indices():
    a = make_batch([5, 6])
    b = make_batch([6])
    assert torch.equal(a["target"][1], b["target"][0]) and torch.equal(a["flow"][1], b["flow"][0])
    assert not torch.equal(make_batch([5])["flow"], make_batch([5], seed=1)["flow"])


DIGEST = """
import hashlib
from gocor.lab.data.splits import held_out_split

def digest(split):
    d = held_out_split(split)
    h = hashlib.sha256()
    for k in sorted(d):
        h.update(d[k].numpy().tobytes())
    return h.hexdigest()
"""
namespace = {}
exec(DIGEST, namespace)
_digest = namespace["digest"]


def test_splits_bit_identical_across_processes():
    code = DIGEST + "print(digest('standard'), digest('repetitive'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert other == [_digest("standard"), _digest("repetitive")]
    assert other[0] != other[1]


def test_splits_shapes_and_held_out_images():
    d = held_out_split("repetitive", n=4)
    assert d["source"].shape == (4, 3, 64, 64) and d["flow"].shape == (4, 2, 64, 64)
    assert d["mask"].dtype == torch.bool
    with pytest.raises(ValueError, match="split"):
        held_out_split("train")


@pytest.mark.parametrize("kind", TEXTURES)
def test_textures_are_periodic_images(kind):
    img = texture(kind, 48, torch.Generator().manual_seed(0))
    assert img.shape == (3, 48, 48) and 0 <= img.min() and img.max() <= 1 and img.std() > 0.05


def test_train_and_test_pictures_are_disjoint():
    """No held-out picture is trained on: the pictures themselves differ, not just their names."""
    assert set(TEST_IMAGES) | set(TRAIN_IMAGES) == set(IMAGES) and not set(TEST_IMAGES) & set(TRAIN_IMAGES)
    train = [load_image(n) for n in TRAIN_IMAGES]
    for name in TEST_IMAGES:
        test = load_image(name)
        assert not any(t.shape == test.shape and torch.equal(t, test) for t in train), name


def test_every_listed_image_loads_offline():
    for name in IMAGES:
        img = load_image(name)
        assert img.shape[0] == 3 and min(img.shape[1:]) == 256 and img.max() <= 1.0
