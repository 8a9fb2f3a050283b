"""The unrolled solver: quadratic case against the closed form, monotone descent, gradcheck."""
import pytest
import torch

from conftest import perturb
from gocor import GlobalGOCor, LocalGOCor


def linear_module(kind, query_loss=False, c=3):
    """A module whose objective is quadratic: mask m = 1 (sigmoid(40) == 1 in float64), exact steps."""
    if kind == "global":
        m = GlobalGOCor(c, initializer="zeros", query_loss=query_loss, prior_inter_dim=2, prior_output_dim=2)
    else:
        m = LocalGOCor(c, initializer="zeros", search_radius=1, query_loss=query_loss,
                       prior_inter_dim=2, prior_output_dim=2)
    m = perturb(m.double(), seed=7)
    with torch.no_grad():
        m.solver.labels.mask.fill_(40.0)
        m.solver.log_step_length.zero_()
        m.solver.filter_reg.fill_(2.0 if kind == "local" else 0.5)
    return m


def objective(module, ref, query, w):
    return module.solver.objective(w, module.operator(ref), module.operator(query))["loss"].sum()


def closed_form(module, ref, query):
    """Solve the normal equations H w = b of the quadratic objective."""
    w0 = torch.zeros_like(ref)
    f = lambda w: objective(module, ref, query, w.view_as(ref))
    hess = torch.autograd.functional.hessian(f, w0.flatten())
    grad0 = torch.autograd.functional.jacobian(f, w0.flatten())
    return torch.linalg.solve(hess, -grad0).view_as(ref)


CASES = [("global", False), ("global", True), ("local", False), ("local", True)]


@pytest.mark.parametrize("kind,query_loss", CASES)
def test_steps_reach_closed_form(kind, query_loss):
    torch.manual_seed(0)
    m = linear_module(kind, query_loss)
    ref = torch.randn(1, 3, 3, 3, dtype=torch.float64)
    query = torch.randn(1, 3, 3, 3, dtype=torch.float64)
    w_star = closed_form(m, ref, query)
    w, trace = m.filters(ref, query, num_iter=300, return_trace=True)
    losses = trace.loss.sum(1)
    assert (losses[1:] <= losses[:-1] + 1e-12).all(), "a step raised the quadratic objective"
    assert losses[1] < losses[0]
    # α = ‖g‖² / max(den, 1e-8) (as in the paper's code): once den < 1e-8 (‖g‖ ~ 1e-5 here)
    # steps shrink, so the iterates stop ~1e-6 short of w*, not at machine precision.
    assert ((w - w_star).norm() / w_star.norm()).item() < 2e-5
    assert abs(losses[-1] - objective(m, ref, query, w_star)) < 1e-9


@pytest.mark.parametrize("kind,query_loss", CASES)
def test_exact_step_is_line_search_minimum(kind, query_loss):
    """On the quadratic, α is the exact minimizer along -g: nudging it either way costs."""
    torch.manual_seed(1)
    m = linear_module(kind, query_loss)
    ref, query = torch.randn(2, 1, 3, 3, 3, dtype=torch.float64)
    base = objective(m, ref, query, m.filters(ref, query, num_iter=1))
    for gamma in (0.05, -0.05):
        with torch.no_grad():
            m.solver.log_step_length.fill_(gamma)
        assert objective(m, ref, query, m.filters(ref, query, num_iter=1)) > base


@pytest.mark.parametrize("kind,query_loss", CASES)
def test_descent_on_robust_objective(kind, query_loss):
    """With the learned (non-quadratic) objective at init, the first steps still descend."""
    torch.manual_seed(2)
    m = (GlobalGOCor(4, query_loss=query_loss) if kind == "global" else LocalGOCor(4)).double()
    ref, query = torch.randn(2, 1, 4, 5, 5, dtype=torch.float64)
    _, trace = m(ref, query, num_iter=3, return_trace=True)
    losses = trace.loss[:, 0].tolist()
    assert losses[-1] < losses[0]
    assert trace.loss.shape == (4, 1) and trace.alpha.shape == ((3, 1, 1) if m.solver.prior is not None else (3, 1, 25))
    assert torch.equal(trace.loss, trace.L_r + trace.L_q + trace.reg)


@pytest.mark.parametrize("kind,query_loss", CASES)
def test_gradcheck_through_module(kind, query_loss, device):
    torch.manual_seed(3)
    if kind == "global":
        m = GlobalGOCor(3, query_loss=query_loss, prior_inter_dim=2, prior_output_dim=2)
    else:
        m = LocalGOCor(3, search_radius=1)
    m = perturb(m.double(), seed=3).to(device)
    ref = torch.randn(1, 3, 3, 4, dtype=torch.float64, device=device, requires_grad=True)
    query = torch.randn(1, 3, 3, 4, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: m(a, b, num_iter=2), (ref, query), eps=1e-6, atol=1e-7)


def test_trace_does_not_change_result():
    torch.manual_seed(5)
    m = GlobalGOCor(4).double()
    ref, query = torch.randn(2, 2, 4, 4, 4, dtype=torch.float64)
    volume, trace = m(ref, query, return_trace=True)
    assert torch.equal(m(ref, query), volume) and trace.num_iter == 3


@pytest.mark.parametrize("kind,query_loss", CASES)
def test_gradcheck_parameters_every_case(kind, query_loss):
    """The hand-written reverse pass reaches every parameter (the learned objective's too), for
    each operator, with 3 steps."""
    torch.manual_seed(6)
    if kind == "global":
        m = GlobalGOCor(3, query_loss=query_loss, prior_inter_dim=2, prior_output_dim=2)
    else:
        m = LocalGOCor(3, search_radius=1)
    m = perturb(m.double(), seed=6)
    ref, query = torch.randn(2, 2, 3, 3, 4, dtype=torch.float64)
    names = [n for n, _ in m.named_parameters()]
    f = lambda *values: torch.func.functional_call(m, dict(zip(names, values)), (ref, query), {"num_iter": 3})
    values = tuple(p.detach().clone().requires_grad_() for p in m.parameters())
    assert torch.autograd.gradcheck(f, values, eps=1e-6, atol=1e-6)


def test_zero_steps_with_trace_passes_the_initial_filters_through():
    torch.manual_seed(7)
    m = GlobalGOCor(4).double()
    ref = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    query = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    out, trace = m(ref, query, num_iter=0, return_trace=True)
    assert trace.loss.shape == (1, 1) and trace.alpha.shape[0] == 0
    assert torch.equal(out, m(ref, query, num_iter=0))
    assert torch.autograd.gradcheck(lambda r: m(r, query, num_iter=0, return_trace=True)[0], (ref,))


def test_memory_kept_for_backward_is_visible_and_grows_with_steps():
    """The solver saves through save_for_backward, so memory accounting (saved-tensor hooks) sees it."""
    from gocor.tools.cost import saved_bytes
    m = GlobalGOCor(8)
    ref, query = torch.randn(2, 1, 8, 6, 6, requires_grad=True)
    sizes = [saved_bytes(lambda: m(ref, query, num_iter=n)) for n in (1, 2, 4)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert sizes[2] - sizes[1] == 2 * (sizes[1] - sizes[0])


def test_second_order_gradients_are_refused_clearly():
    m = GlobalGOCor(3).double()
    ref, query = torch.randn(2, 1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="differentiable once"):
        torch.autograd.grad(m(ref, query).square().sum(), ref, create_graph=True)
