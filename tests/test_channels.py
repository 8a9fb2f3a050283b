import pytest
import torch
import torch.nn.functional as F

from gocor.lab.models.channels import channel_norm, normalize_channels


@pytest.fixture
def x():
    t = torch.randn(3, 4, 5, 6, dtype=torch.float64)
    t[0, :, 1, 2] = 0.0                               # a zero vector: gradient 0, value 0
    return t.requires_grad_()


@pytest.mark.parametrize("ours, torch_fn", [(channel_norm, lambda t: t.norm(dim=1)),
                                            (normalize_channels, lambda t: F.normalize(t, dim=1))])
def test_values_and_gradients_equal_torch(x, ours, torch_fn):
    a, b = ours(x), torch_fn(x)
    assert torch.allclose(a, b, atol=1e-14)
    w = torch.randn_like(a)
    ga, = torch.autograd.grad((a * w).sum(), x)
    gb, = torch.autograd.grad((b * w).sum(), x)
    assert torch.isfinite(ga).all()
    assert torch.allclose(ga, gb, atol=1e-12)


def test_keepdim_shape(x):
    assert channel_norm(x, keepdim=True).shape == (3, 1, 5, 6)
    assert channel_norm(x).shape == (3, 5, 6)
