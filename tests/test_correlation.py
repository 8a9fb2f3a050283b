"""Correlation operators: layouts against brute force, and the adjoint identity."""
import pytest
import torch

from gocor.correlation import GlobalCorrelation, LocalCorrelation, global_correlation, local_correlation
from gocor.objective import QueryPrior


def test_global_layout_brute_force():
    torch.manual_seed(0)
    ref, q = torch.randn(2, 5, 3, 4, dtype=torch.float64), torch.randn(2, 5, 2, 3, dtype=torch.float64)
    vol = global_correlation(ref, q)
    assert vol.shape == (2, 6, 3, 4)
    for b, yq, xq, y, x in [(0, 1, 2, 2, 3), (1, 0, 1, 1, 0)]:
        assert torch.isclose(vol[b, yq * 3 + xq, y, x], (ref[b, :, y, x] * q[b, :, yq, xq]).sum())


@pytest.mark.parametrize("radius", [0, 1, 2, 4])
def test_local_layout_brute_force(radius):
    torch.manual_seed(1)
    c, h, w = 3, 5, 6
    ref, q = torch.randn(1, c, h, w, dtype=torch.float64), torch.randn(1, c, h, w, dtype=torch.float64)
    vol = local_correlation(ref, q, radius)
    k = 2 * radius + 1
    assert vol.shape == (1, k * k, h, w)
    for y in range(h):
        for x in range(w):
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    inside = 0 <= y + dy < h and 0 <= x + dx < w
                    want = (ref[0, :, y, x] * q[0, :, y + dy, x + dx]).sum() / c if inside else 0.0
                    got = vol[0, (dy + radius) * k + dx + radius, y, x]
                    assert torch.isclose(got, torch.as_tensor(want, dtype=got.dtype))


def _adjoint_gap(apply, transpose, x, y):
    lhs = (apply(x) * y).sum()
    rhs = (x * transpose(y)).sum()
    return abs(lhs - rhs).item() / max(abs(lhs).item(), 1e-30)


@pytest.mark.parametrize("make", [lambda f: GlobalCorrelation(f), lambda f: LocalCorrelation(f, 2),
                                  lambda f: LocalCorrelation(f, 4)])
def test_correlation_adjoint(make, device):
    torch.manual_seed(2)
    f = torch.randn(2, 6, 7, 5, dtype=torch.float64, device=device)
    op = make(f)
    x = torch.randn(2, 6, 7, 5, dtype=torch.float64, device=device)
    y = torch.randn_like(op.apply(x))
    assert _adjoint_gap(op.apply, op.transpose, x, y) < 1e-12


def test_global_adjoint_query_of_other_size():
    torch.manual_seed(3)
    op = GlobalCorrelation(torch.randn(1, 4, 3, 8, dtype=torch.float64))
    x = torch.randn(1, 4, 5, 2, dtype=torch.float64)
    y = torch.randn(1, 24, 5, 2, dtype=torch.float64)
    assert _adjoint_gap(op.apply, op.transpose, x, y) < 1e-12


def test_prior_adjoint(device):
    torch.manual_seed(4)
    prior = QueryPrior(3, 4, 5).double().to(device)
    vol = torch.randn(2, 4 * 6, 3, 5, dtype=torch.float64, device=device)   # query 4x6, reference 3x5
    out = torch.randn(2, 4 * 6, 3, 5, 5, dtype=torch.float64, device=device)
    gap = _adjoint_gap(lambda v: prior(v, (4, 6)), lambda o: prior.adjoint(o, (4, 6)), vol, out)
    assert gap < 1e-12


def test_prior_matches_4d_brute_force():
    torch.manual_seed(5)
    prior = QueryPrior(3, 2, 2).double()
    vol = torch.randn(1, 3 * 4, 3, 4, dtype=torch.float64)
    out = prior(vol, (3, 4))
    v = vol.view(3, 4, 3, 4)   # (query y, x, reference y, x)
    w1, w2 = prior.weight1[:, 0], prior.weight2
    o, qy, qx, ry, rx = 1, 2, 0, 1, 3
    want = 0.0
    for i in range(2):
        for a in range(3):
            for b in range(3):
                for cc in range(3):
                    for d in range(3):
                        y1, x1, y2, x2 = qy + a - 1, qx + b - 1, ry + cc - 1, rx + d - 1
                        if 0 <= y1 < 3 and 0 <= x1 < 4 and 0 <= y2 < 3 and 0 <= x2 < 4:
                            want += w2[o, i, cc, d] * w1[i, a, b] * v[y1, x1, y2, x2]
    assert torch.isclose(out[0, qy * 4 + qx, ry, rx, o], torch.as_tensor(want, dtype=torch.float64))


OPERATORS = [lambda f: GlobalCorrelation(f), lambda f: LocalCorrelation(f, 1), lambda f: LocalCorrelation(f, 3)]


@pytest.mark.parametrize("make", OPERATORS)
def test_feat_grad_is_the_derivative_wrt_features(make, device):
    """feat_grad(w, S) = ∂<S, apply(w)>/∂feat, against autograd through the operator's construction."""
    torch.manual_seed(6)
    f = torch.randn(2, 4, 5, 6, dtype=torch.float64, device=device, requires_grad=True)
    w = torch.randn(2, 4, 5, 6, dtype=torch.float64, device=device)
    scores = torch.randn_like(make(f).apply(w))
    (want,) = torch.autograd.grad((make(f).apply(w) * scores).sum(), f)
    got = make(f.detach()).feat_grad(w, scores)
    assert got.shape == f.shape
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


def test_global_feat_grad_query_of_other_size():
    torch.manual_seed(7)
    f = torch.randn(1, 3, 2, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 3, 4, 3, dtype=torch.float64)
    scores = torch.randn(1, 14, 4, 3, dtype=torch.float64)
    (want,) = torch.autograd.grad((GlobalCorrelation(f).apply(w) * scores).sum(), f)
    assert torch.allclose(GlobalCorrelation(f.detach()).feat_grad(w, scores), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("query,ref", [((3, 4), (5, 2)), ((16, 16), (16, 16)), ((1, 1), (1, 1)), ((2, 5), (3, 1))])
def test_global_distances_from_offsets(query, ref):
    """Maps computed once per displacement and spread over all pairs equal the pairwise definition."""
    op = GlobalCorrelation(torch.randn(1, 2, *query, dtype=torch.float64))
    qy, qx = torch.meshgrid(torch.arange(query[0]), torch.arange(query[1]), indexing="ij")
    py, px = torch.meshgrid(torch.arange(ref[0]), torch.arange(ref[1]), indexing="ij")
    dy, dx = qy.reshape(-1, 1, 1) - py, qx.reshape(-1, 1, 1) - px
    want = torch.sqrt((dy * dy + dx * dx).double())
    assert torch.equal(op.distances(*ref), want)
    # any map over displacements, not only one that is symmetric in (dy, dx)
    per_offset = torch.randn(2, query[0] + ref[0] - 1, query[1] + ref[1] - 1, dtype=torch.float64)
    spread = op.expand(per_offset, *ref)
    assert torch.equal(spread, per_offset[:, dy + ref[0] - 1, dx + ref[1] - 1])


def _all_pairs_local(ref, query, radius):
    """The previous local correlation, as a reference: every pair between a row of filters and the
    padded feature row (one matmul per vertical offset), the band of 2r+1 diagonals kept."""
    b, c, h, w = ref.shape
    k = 2 * radius + 1
    rows = torch.nn.functional.pad(query, (radius,) * 4).permute(0, 2, 3, 1)        # (B, H+2r, W+2r, C)
    wl = ref.permute(0, 2, 3, 1)
    bands = []
    for dy in range(k):
        full = torch.matmul(wl, rows[:, dy:dy + h].transpose(-1, -2))               # (B, H, W, W+2r)
        bands.append(torch.stack([full[..., x, x:x + k] for x in range(w)], -2))  # (B, H, W, k)
    return (torch.stack(bands, 3).flatten(3) / c).permute(0, 3, 1, 2)


class TestLocalCorrelationTiles:
    """The tiled local correlation (only the window's pairs, up to the tiles' overlap) against the
    previous all-pairs-per-row implementation, its gradients, and finite differences."""

    @pytest.mark.parametrize("radius,size", [(0, (3, 5)), (1, (5, 9)), (3, (7, 6)), (4, (9, 17)), (4, (16, 16))])
    def test_values_and_gradients_equal_the_all_pairs_implementation(self, radius, size, device):
        torch.manual_seed(8)
        kw = dict(dtype=torch.float64, device=device)
        ref = torch.randn(2, 5, *size, **kw, requires_grad=True)
        query = torch.randn(2, 5, *size, **kw, requires_grad=True)
        got = local_correlation(ref, query, radius)
        want = _all_pairs_local(ref, query, radius)
        assert got.shape == want.shape == (2, (2 * radius + 1) ** 2, *size)
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
        probe = torch.randn_like(want)
        g_got = torch.autograd.grad((got * probe).sum(), (ref, query))
        g_want = torch.autograd.grad((want * probe).sum(), (ref, query))
        assert all(torch.allclose(a, b, rtol=1e-12, atol=1e-12) for a, b in zip(g_got, g_want))

    def test_transpose_and_feat_grad_are_the_all_pairs_derivatives(self):
        torch.manual_seed(9)
        ref = torch.randn(1, 3, 6, 10, dtype=torch.float64, requires_grad=True)
        query = torch.randn(1, 3, 6, 10, dtype=torch.float64, requires_grad=True)
        scores = torch.randn(1, 25, 6, 10, dtype=torch.float64)
        g_ref, g_query = torch.autograd.grad((_all_pairs_local(ref, query, 2) * scores).sum(), (ref, query))
        op = LocalCorrelation(query.detach(), 2)
        assert torch.allclose(op.transpose(scores), g_ref, rtol=1e-12, atol=1e-12)
        assert torch.allclose(op.feat_grad(ref.detach(), scores), g_query, rtol=1e-12, atol=1e-12)

    def test_gradcheck_first_and_second_order(self):
        torch.manual_seed(10)
        kw = dict(dtype=torch.float64, requires_grad=True)
        w, f = torch.randn(1, 2, 5, 7, **kw), torch.randn(1, 2, 5, 7, **kw)
        s = torch.randn(1, 9, 5, 7, **kw)
        fns = [lambda w, f, s: LocalCorrelation(f, 1).apply(w) * s,
               lambda w, f, s: LocalCorrelation(f, 1).transpose(s) * w,
               lambda w, f, s: LocalCorrelation(f, 1).feat_grad(w, s) * f]
        for fn in fns:
            assert torch.autograd.gradcheck(fn, (w, f, s))
            assert torch.autograd.gradgradcheck(fn, (w, f, s))

    def test_computes_about_the_window_not_the_row(self):
        """Matmul FLOPs of one pass at r=4, 64 px: within 3.2x of 2·B·C·H·W·(2r+1)², where pairing
        whole rows needs (W+2r)/(2r+1) = 8x."""
        from gocor.tools.cost import count_flops
        ref, query = torch.randn(1, 8, 64, 64), torch.randn(1, 8, 64, 64)
        need = 2 * 8 * 64 * 64 * 81
        tiled = count_flops(lambda: local_correlation(ref, query, 4))[0]
        rows = count_flops(lambda: _all_pairs_local(ref, query, 4))[0]
        assert tiled <= 3.2 * need and rows >= 7.9 * need

    @pytest.mark.parametrize("budget_images,batch", [(1, 3), (2, 5)])
    def test_chunks_of_images_give_the_one_call_results_exactly(self, monkeypatch, budget_images, batch):
        """On the CPU a pass takes a few images at a time (their all-pairs products kept in cache):
        every output equals the whole batch's in one call bit for bit, an uneven last chunk too,
        under autograd (first and second order) as without it."""
        import gocor.correlation as corr
        torch.manual_seed(12)
        r, shape = 2, (batch, 6, 11, 9)
        f, w = torch.randn(*shape), torch.randn(*shape)
        s = torch.randn(batch, (2 * r + 1) ** 2, *shape[-2:])

        def everything():
            op = LocalCorrelation(f, r)
            with torch.no_grad():
                out = [op.apply(w), op.transpose(s), op.feat_grad(w, s), *op.transpose_and_feat_grad(w, s)]
            wg, fg = w.clone().requires_grad_(), f.clone().requires_grad_()
            first = torch.autograd.grad((local_correlation(wg, fg, r) * s).sum(), (wg, fg), create_graph=True)
            second = torch.autograd.grad(sum((g * g).sum() for g in first), (wg, fg))
            return op, out + list(first) + list(second)

        _, whole = everything()
        assert LocalCorrelation(f, r).images_per_chunk() == batch     # these small images: one call
        monkeypatch.setattr(corr, "_CHUNK_BYTES", budget_images * LocalCorrelation(f, r).product_bytes_per_image())
        monkeypatch.setattr(corr, "_CHUNK_ABOVE", 0)
        chunks = []
        images = LocalCorrelation.images
        monkeypatch.setattr(LocalCorrelation, "images", lambda op, a, b: chunks.append((a, b)) or images(op, a, b))
        op, chunked = everything()
        assert op.images_per_chunk() == budget_images < batch
        n = -(-batch // budget_images)
        # each of the 5 passes without autograd, and those under autograd, went chunk by chunk
        assert len(chunks) >= 5 * n and set(chunks) == {(i, min(i + budget_images, batch)) for i in range(0, batch, budget_images)}
        assert all(torch.equal(a, b) for a, b in zip(whole, chunked))

    def test_chunks_only_for_large_batches(self):
        """The bench's case (B = 4, C = 64, 64², r = 4: 16 MiB of tile products) goes one image
        at a time; the matcher's levels (at most 11.4 MiB) in one call."""
        assert LocalCorrelation(torch.empty(4, 64, 64, 64), 4).images_per_chunk() == 1
        assert LocalCorrelation(torch.empty(16, 16, 32, 32), 3).images_per_chunk() == 16
        assert LocalCorrelation(torch.empty(16, 32, 16, 16), 3).images_per_chunk() == 16
        assert LocalCorrelation(torch.empty(4, 64, 64, 64, device="meta"), 4).images_per_chunk() == 4   # off the CPU
        assert LocalCorrelation(torch.empty(5, 64, 48, 64), 4).images_per_chunk() == 1   # 15 MiB in all, 3 MiB per image

    def test_filters_or_scores_of_another_batch_are_refused(self):
        op = LocalCorrelation(torch.randn(4, 64, 64, 64), 4)          # large enough to go in chunks
        with pytest.raises(ValueError, match="filters hold 2 images, the correlation's features 4"):
            op.apply(torch.randn(2, 64, 64, 64))
        with pytest.raises(ValueError, match="scores hold 3 images"):
            op.transpose(torch.randn(3, 81, 64, 64))

    def test_reused_work_buffers_never_leak_between_calls(self):
        """The products and the scattered scores live in reused buffers: a result must not change
        when the operator is used again, and scores changed in place (same tensor, new version)
        or other scores of the same size are scattered afresh, never read from the last call."""
        torch.manual_seed(11)
        f, w, w2 = (torch.randn(2, 4, 9, 13) for _ in range(3))
        op, fresh = LocalCorrelation(f, 2), lambda: LocalCorrelation(f.clone(), 2)
        first = op.apply(w)
        keep = first.clone()
        op.apply(w2)
        assert torch.equal(first, keep) and torch.equal(first, fresh().apply(w))
        s = torch.randn(2, 25, 9, 13)
        t = op.transpose(s)
        assert torch.equal(op.feat_grad(w, s), fresh().feat_grad(w, s))       # the scatter, shared
        s.mul_(-2.0)                                                           # same tensor, new values
        assert torch.equal(op.transpose(s), fresh().transpose(s)) and not torch.equal(op.transpose(s), t)
        s2 = torch.randn(2, 25, 9, 13)
        assert torch.equal(op.feat_grad(w, s2), fresh().feat_grad(w, s2))

    def test_transpose_and_feat_grad_together_equal_the_two_calls(self):
        """One scatter of the scores for both (the solver's reverse pass): the same tensors, bit for
        bit; under grad mode it is the two differentiable calls."""
        torch.manual_seed(12)
        f, w = torch.randn(2, 4, 9, 13), torch.randn(2, 4, 9, 13)
        s = torch.randn(2, 25, 9, 13)
        op = LocalCorrelation(f, 2)
        with torch.no_grad():
            both = op.transpose_and_feat_grad(w, s)
        assert torch.equal(both[0], op.transpose(s)) and torch.equal(both[1], op.feat_grad(w, s))
        wg = w.clone().requires_grad_()
        t, g = op.transpose_and_feat_grad(wg, s)
        assert g.requires_grad and torch.equal(t, both[0])

    def test_work_buffers_made_in_inference_mode_serve_training(self):
        """A buffer first made under torch.inference_mode (evaluation) is a normal tensor: the
        training step after it writes into it (an inference tensor would refuse the update)."""
        f, w = torch.randn(1, 4, 11, 7), torch.randn(1, 4, 11, 7, requires_grad=True)
        with torch.inference_mode():
            first = local_correlation(w, f, 2)
        again = local_correlation(w, f, 2)
        again.sum().backward()
        assert torch.equal(first, again.detach()) and w.grad is not None


class TestLayerInputs:
    """global_correlation / local_correlation refuse what they cannot correlate, naming the argument."""

    @pytest.mark.parametrize("fn", ["local", "global"])
    @pytest.mark.parametrize("query, message", [
        (torch.zeros(2, 5, 6, 7), "channel mismatch: reference 6, query 5"),
        (torch.zeros(1, 6, 6, 7), "batch mismatch: reference 2, query 1"),
        (torch.zeros(2, 6, 6, 7, dtype=torch.float64), "dtype mismatch"),
        (torch.zeros(2, 6, 6, 7, dtype=torch.int64), "query must be a floating-point tensor"),
        (torch.zeros(6, 6, 7), "query must be 4-D"),
    ])
    def test_mismatched_inputs_raise(self, fn, query, message):
        from gocor.correlation import global_correlation, local_correlation
        layer = local_correlation if fn == "local" else global_correlation
        with pytest.raises((ValueError, TypeError), match=message):
            layer(torch.zeros(2, 6, 6, 7), query)

    def test_local_needs_the_same_size_and_an_integer_radius(self):
        from gocor.correlation import local_correlation
        a = torch.zeros(1, 3, 13, 17)
        with pytest.raises(ValueError, match=r"reference \(13, 17\) and query \(12, 17\)"):
            local_correlation(a, torch.zeros(1, 3, 12, 17), 1)
        with pytest.raises(ValueError, match="search radius must be an integer >= 0, got 1.5"):
            local_correlation(a, a, 1.5)

    def test_mixed_dtypes_under_autocast_correlate_in_autocast_dtype(self):
        from gocor.correlation import global_correlation, local_correlation
        torch.manual_seed(0)
        a, b = torch.randn(2, 6, 9, 11), torch.randn(2, 6, 9, 11)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            for layer in (lambda x, y: local_correlation(x, y, 2), global_correlation):
                want = layer(a.bfloat16(), b.bfloat16())
                for x, y in ((a.bfloat16(), b), (a, b.bfloat16())):
                    got = layer(x, y)
                    assert got.dtype == torch.bfloat16 and torch.equal(got, want)
