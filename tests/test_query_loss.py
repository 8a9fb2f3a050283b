"""The query loss as a patch Gram form, against its definition through the 4D prior."""
import pytest
import torch
import torch.nn.functional as F

from conftest import perturb
from gocor import GlobalGOCor
from gocor.correlation import GlobalCorrelation
from gocor.objective import QueryPrior
from gocor.query_loss import QueryLoss, fold_patches, patches, query_gram


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("k", [1, 3, 5])
def test_patches_are_unfold_reordered(k, device):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64, device=device)
    ref = F.unfold(x, k, padding=k // 2).view(2, 3, k * k, 24)            # [b, c, t, u]
    assert torch.equal(patches(x, k), ref.permute(0, 3, 2, 1).reshape(2, 24, k * k * 3))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_fold_is_the_adjoint_of_patches(k, device):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64, device=device)
    y = torch.randn(2, 24, k * k * 3, dtype=torch.float64, device=device)
    lhs, rhs = (patches(x, k) * y).sum(), (x * fold_patches(y, (4, 6), k)).sum()
    assert abs(lhs - rhs) / abs(lhs) < 1e-12
    # the derivatives on one image of 2 channels (same grid, so the same borders): numerical
    # Jacobians cost (inputs x outputs), 9x less than on the 2 images of 3 channels above
    x, y = x[:1, :2].clone(), y[:1].view(1, 24, k * k, 3)[..., :2].reshape(1, 24, k * k * 2).clone()
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: patches(x, k), x)
    assert torch.autograd.gradgradcheck(lambda y: fold_patches(y, (4, 6), k), y.requires_grad_(True))


@pytest.mark.parametrize("k,inter,out,ref_size,query_size", [
    (3, 4, 5, (4, 5), (4, 5)),
    (3, 2, 3, (3, 6), (5, 2)),       # query and reference grids of different sizes
    (5, 3, 2, (4, 4), (3, 5)),
    (1, 2, 2, (2, 3), (3, 3)),
])
def test_gram_form_equals_the_prior_on_the_volume(k, inter, out, ref_size, query_size, device):
    """‖R(C(w, f^q))‖² = Σ_u Γ_u Q Γ_uᵀ and M w = ∇ ½‖R C(w)‖², borders included."""
    torch.manual_seed(2)
    prior = perturb(QueryPrior(k, inter, out).double(), seed=3).to(device)
    fq = torch.randn(2, 4, *query_size, dtype=torch.float64, device=device)
    w = torch.randn(2, 4, *ref_size, dtype=torch.float64, device=device, requires_grad=True)
    energy = (prior(GlobalCorrelation(fq).apply(w), query_size) ** 2).flatten(1).sum(1)
    grad, = torch.autograd.grad(0.5 * energy.sum(), w)

    lq = QueryLoss(prior, fq)
    mw = lq.apply(w)
    assert _rel(mw, grad) < 1e-12
    assert _rel(lq.energy(w), 0.5 * energy) < 1e-12
    q = query_gram(prior, fq)
    assert _rel(q, q.transpose(1, 2)) < 1e-14


def test_gram_form_sees_every_parameter():
    """A wrong kernel (weight1 nudged) must change Q: the form is not a tautology."""
    torch.manual_seed(4)
    prior = QueryPrior(3, 2, 2).double()
    fq = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    q = query_gram(prior, fq)
    with torch.no_grad():
        prior.weight1[0, 0, 0, 0] += 1e-3
    assert _rel(query_gram(prior, fq), q) > 1e-6


def test_query_loss_gradients_first_and_second_order():
    torch.manual_seed(5)
    prior = QueryPrior(3, 2, 3).double()
    fq = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    fn = lambda w, fq, w1, w2: QueryLoss(prior, fq).apply(w)
    inputs = (w, fq, prior.weight1, prior.weight2)
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_vjp_is_the_reverse_pass_of_apply():
    """The written-out vjp (used by the solver's backward) equals autograd through apply, for
    the filters and the Gram, and accumulates Q̄ in place over several applications."""
    torch.manual_seed(7)
    prior = QueryPrior(3, 2, 3).double()
    fq = torch.randn(2, 3, 3, 4, dtype=torch.float64)
    lq = QueryLoss(prior, fq)
    gram = lq.gram.detach().requires_grad_(True)
    lq_leaf = QueryLoss.from_gram(gram, lq.kernel_size)
    xs = [torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    bars = [torch.randn(2, 3, 3, 4, dtype=torch.float64) for _ in range(2)]
    total = sum((lq_leaf.apply(x) * b).sum() for x, b in zip(xs, bars))
    *x_grads, gram_grad = torch.autograd.grad(total, xs + [gram])
    acc = None
    for x, b, want in zip(xs, bars, x_grads):
        got, acc = lq_leaf.vjp(x.detach(), b, acc)
        assert _rel(got, want) < 1e-12
    assert _rel(acc, gram_grad) < 1e-12


def test_solver_trace_matches_the_definition():
    """The solver's L_q (Gram form, updated recursively) equals objective()'s (4D prior) at every step."""
    torch.manual_seed(6)
    m = perturb(GlobalGOCor(5, prior_inter_dim=3, prior_output_dim=4).double(), seed=8)
    ref, query = (torch.randn(2, 5, 4, 5, dtype=torch.float64) for _ in range(2))
    iterates = []
    trace = m.filters(ref, query, num_iter=3, return_trace=True)[1]
    for n in range(4):
        w = m.filters(ref, query, num_iter=n) if n else m.initializer(ref)
        iterates.append(m.solver.objective(w, m.operator(ref), m.operator(query)))
    for i, want in enumerate(iterates):
        for key in ("L_r", "L_q", "reg", "loss"):
            assert _rel(getattr(trace, key)[i], want[key]) < 1e-10, key


def test_volume_query_loss_equals_the_gram_form_on_global_correlation():
    """The local query loss goes through the volume; on a global operator the same code must give
    the Gram form's M w, energy and gradients (prior weights and query features)."""
    from gocor.correlation import GlobalCorrelation
    from gocor.objective import QueryPrior
    from gocor.query_loss import QueryLoss, VolumeQueryLoss
    torch.manual_seed(3)
    prior = QueryPrior(3, 2, 3).double()
    feat = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    gram, vol = QueryLoss(prior, feat), VolumeQueryLoss(prior, GlobalCorrelation(feat))
    assert torch.allclose(gram.apply(w), vol.apply(w), atol=1e-10)
    assert torch.allclose(gram.energy(w), vol.energy(w), atol=1e-10)
    x_bar = torch.randn_like(w)
    leaves = (feat, prior.weight1, prior.weight2)
    expect = torch.autograd.grad((gram.apply(w) * x_bar).sum(), leaves)
    x_grad, got = vol.accumulate_vjp(w, x_bar, None, (True, True, True))
    assert torch.allclose(x_grad, vol.apply(x_bar), atol=1e-12)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(expect, got))
    _, twice = vol.accumulate_vjp(w, x_bar, got, (True, True, True))
    assert all(torch.allclose(2 * a, b, atol=1e-10) for a, b in zip(expect, twice))
    # what apply_saving keeps of M w is exactly what the reverse pass would recompute
    mw, residue = vol.apply_saving(w)
    assert torch.equal(mw, vol.apply(w))
    x_grad_saved, saved = vol.accumulate_vjp(w, x_bar, None, (True, True, True), residue)
    assert torch.equal(x_grad_saved, x_grad) and all(torch.equal(a, b) for a, b in zip(saved, got))


class TestChooseQueryLossForm:
    """The global query loss's form is picked by its cost: the Gram (k²C)² against the volume's C·N·N'."""

    ARGS = dict(batch=4, filter_size=(16, 16), query_size=(16, 16), kernel_size=3, out_dim=16, num_iter=3)

    def test_gram_at_the_kits_size_volume_at_glunets(self):
        from gocor.query_loss import choose_query_loss_form
        assert choose_query_loss_form(channels=64, **self.ARGS) == "gram"
        assert choose_query_loss_form(channels=512, **self.ARGS) == "volume"

    def test_flops_grow_as_the_issue_says(self):
        from gocor.query_loss import query_loss_flops
        gram = [query_loss_flops("gram", channels=c, **self.ARGS) for c in (256, 512)]
        vol = [query_loss_flops("volume", channels=c, **self.ARGS) for c in (256, 512)]
        assert 3.9 < gram[1] / gram[0] <= 4.0          # quadratic in C
        assert 1.0 < vol[1] / vol[0] < 1.5            # the conv over the volume does not grow with C

    @pytest.mark.parametrize("form", ["gram", "volume"])
    def test_the_module_runs_the_form_it_was_given(self, form, monkeypatch):
        import gocor.solver as solver
        made = []
        real = solver.make_query_loss
        monkeypatch.setattr(solver, "make_query_loss", lambda *a: made.append(real(*a)) or made[-1])
        torch.manual_seed(0)
        m = GlobalGOCor(4, query_loss_form=form).double()
        m(torch.randn(1, 4, 5, 5, dtype=torch.float64), torch.randn(1, 4, 5, 5, dtype=torch.float64))
        from gocor.query_loss import VolumeQueryLoss
        assert isinstance(made[0], VolumeQueryLoss if form == "volume" else QueryLoss)

    def test_unknown_form_is_refused(self):
        with pytest.raises(ValueError, match="query_loss_form"):
            GlobalGOCor(4, query_loss_form="fast")
