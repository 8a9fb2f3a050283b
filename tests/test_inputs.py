"""Bad input gets a clear error; degenerate but valid input gets a finite volume."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from gocor import GlobalGOCor, LocalGOCor
from gocor.initializers import GLOBAL_INITIALIZERS, LOCAL_INITIALIZERS


@pytest.fixture(params=["global", "global_lq", "local"])
def module(request):
    torch.manual_seed(0)
    if request.param == "local":
        return LocalGOCor(4)
    return GlobalGOCor(4, query_loss=request.param == "global_lq")


x = torch.randn(2, 4, 5, 6)


@pytest.mark.parametrize("ref,query,err,match", [
    (x, x[:1], ValueError, "batch"),
    (x, torch.randn(2, 3, 5, 6), ValueError, "channels"),
    (x[0], x[0], ValueError, "4-D"),
    (x.unsqueeze(0), x.unsqueeze(0), ValueError, "4-D"),
    (x.long(), x.long(), TypeError, "floating"),
    (x, x.double(), TypeError, "dtype"),
    (x.numpy(), x, TypeError, "torch.Tensor"),
])
def test_bad_input_raises(module, ref, query, err, match):
    with pytest.raises(err, match=match):
        module(ref, query)


def test_size_mismatch_where_sizes_must_agree():
    q = torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match="same spatial size"):
        GlobalGOCor(4, query_loss=True)(x, q)
    with pytest.raises(ValueError, match="same spatial size"):
        LocalGOCor(4)(x, q)
    assert GlobalGOCor(4, query_loss=False)(x, q).shape == (2, 9, 5, 6)


def test_bad_config():
    with pytest.raises(ValueError, match="initializer"):
        GlobalGOCor(4, initializer="nope")
    with pytest.raises(ValueError, match="must be odd"):
        LocalGOCor(4, query_loss=True, prior_kernel_size=2)


DEGENERATE = {
    "zeros": torch.zeros(2, 4, 5, 6),
    "one_zero_vector": torch.randn(2, 4, 5, 6).index_fill_(2, torch.tensor([1]), 0.0),
    "constant": torch.full((2, 4, 5, 6), 3.0),
    "constant_1e4": torch.full((2, 4, 5, 6), 1e4),
    "one_by_one": torch.randn(2, 4, 1, 1),
    "large_1e4": 1e4 * torch.randn(2, 4, 5, 6),
    "tiny": 1e-6 * torch.randn(2, 4, 5, 6),
}


@pytest.mark.parametrize("name", DEGENERATE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_inputs_finite(name, dtype):
    feat = DEGENERATE[name].to(dtype)
    query = torch.randn_like(feat) * feat.abs().max().clamp_min(1)
    modules = [GlobalGOCor(4, initializer=i, query_loss=lq) for i in GLOBAL_INITIALIZERS for lq in (False, True)]
    modules += [LocalGOCor(4, initializer=i) for i in LOCAL_INITIALIZERS]
    for m in modules:
        m = m.to(dtype)
        for r, q in ((feat, feat), (feat, query), (query, feat)):
            out = m(r, q)
            assert torch.isfinite(out).all(), (name, m.config.initializer)


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 2), c=st.integers(1, 6), h=st.integers(1, 7), w=st.integers(1, 7),
       log_scale=st.floats(-4, 4), double=st.booleans(), lq=st.booleans(), seed=st.integers(0, 10_000))
def test_fuzz_shapes_and_scales(b, c, h, w, log_scale, double, lq, seed):
    dtype = torch.float64 if double else torch.float32
    g = torch.Generator().manual_seed(seed)
    ref = (10 ** log_scale) * torch.randn(b, c, h, w, generator=g).to(dtype)
    query = (10 ** log_scale) * torch.randn(b, c, h, w, generator=g).to(dtype)
    glob = GlobalGOCor(c, query_loss=lq, prior_inter_dim=2, prior_output_dim=2).to(dtype)
    loc = LocalGOCor(c, search_radius=2).to(dtype)
    out_g, out_l = glob(ref, query), loc(ref, query)
    assert out_g.shape == (b, h * w, h, w) and out_g.dtype == dtype
    assert out_l.shape == (b, 25, h, w)
    assert torch.isfinite(out_g).all() and torch.isfinite(out_l).all()
