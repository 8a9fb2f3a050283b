"""The unrolled steepest-descent filter optimizer (Sec. 3.1 and 3.4 of the paper).

Written once over a pair of correlation operators (``ref_op`` for the reference loss,
``query_op`` for the query loss and the output), so that global and local GOCor differ
only in the operator. Each step:

    g = A_rᵀ(v+σ'(s) · r) + λ² w  [+ M w]                        (gradient)
    α = ‖g‖² / (‖v+σ'(s) · A_r g‖² + λ² ‖g‖²  [+ <g, M g>])     (exact Gauss-Newton step)
    w ← w − exp(γ) α g

with M = A_qᵀ Rᵀ R A_q the query loss's Hessian (<g, M g> = ‖R A_q g‖²), applied through
its patch Gram matrix (:class:`gocor.query_loss.QueryLoss`) for global GOCor, through the
volume for local GOCor (:class:`gocor.query_loss.VolumeQueryLoss`). α is per filter, or per image pair when
the query loss couples all filters. Scores A_r w and M w are linear in w and updated in
place of recomputation. The steps form one autograd node whose reverse pass is written
out (:class:`_UnrolledDescent`); it needs of each operator also ``feat_grad``, the
derivative of <scores, apply(w)> wrt the operator's features, and ``transpose_and_feat_grad``,
both for the same scores at once (local correlation scatters them into its tiles once).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
from torch import Tensor

from .correlation import CorrelationOperator
from .objective import LearnedLabels, QueryPrior, activation_slopes, robust_activation
from .query_loss import QUERY_LOSS_FORMS, QueryLoss, VolumeQueryLoss, make_query_loss


@dataclass(frozen=True)
class SolverTrace:
    """Per-step diagnostics of one solve, detached. Row i of the losses is the objective at the
    filters before step i; the last row (index ``num_iter``) is at the returned filters."""

    L_r: Tensor                         # (num_iter + 1, B) reference loss per image
    L_q: Tensor                         # (num_iter + 1, B) query loss per image (0 without it)
    reg: Tensor                         # (num_iter + 1, B) ½λ²‖w‖² per image
    loss: Tensor                        # (num_iter + 1, B) their sum
    alpha: Tensor                       # (num_iter, B, H·W) per filter, or (num_iter, B, 1) per image

    @classmethod
    def from_steps(cls, steps: list[dict]) -> "SolverTrace":
        def stack(key: str) -> Tensor:
            return torch.stack([s[key] for s in steps])
        alphas = [s["alpha"] for s in steps if "alpha" in s]
        ref = steps[0]["L_r"]
        alpha = torch.stack(alphas) if alphas else ref.new_zeros(0, ref.shape[0], 1)
        return cls(stack("L_r"), stack("L_q"), stack("reg"), stack("loss"), alpha)

    @property
    def num_iter(self) -> int:
        return self.alpha.shape[0]


def _per_filter(x: Tensor) -> Tensor:
    return x.sum(1, keepdim=True)


def _per_image(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).sum(1).view(-1, 1, 1, 1)


class FilterOptimizer(nn.Module):
    """Minimizes L_r + L_q + ½λ²‖w‖² over filters w (B, C, H, W) by ``num_iter`` steps."""

    def __init__(self, labels: LearnedLabels, prior: QueryPrior | None = None,
                 init_step_length: float = 1.0, init_filter_reg: float = 1e-2,
                 min_filter_reg: float = 1e-5, query_loss_form: str = "auto"):
        super().__init__()
        if query_loss_form not in QUERY_LOSS_FORMS:
            raise ValueError(f"query_loss_form must be one of {QUERY_LOSS_FORMS}, got {query_loss_form!r}")
        self.labels = labels
        self.prior = prior
        self.query_loss_form = query_loss_form      # global L_q through the Gram, the volume, or the cheaper
        self.log_step_length = nn.Parameter(torch.tensor([math.log(init_step_length)]))
        self.filter_reg = nn.Parameter(torch.tensor([init_filter_reg]))
        self.min_filter_reg = min_filter_reg

    def reg_weight(self, op: CorrelationOperator, dtype: torch.dtype) -> Tensor:
        """λ² = max(θ_λ², min²), times the operator's scale² (1/C² for local correlation)."""
        lam2 = (self.filter_reg * self.filter_reg).clamp(min=self.min_filter_reg ** 2)
        return lam2.to(dtype) * op.scale ** 2

    def labels_per_offset(self, op: CorrelationOperator, height: int, width: int,
                          dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """y, v+, m once per displacement between filter and partner (spread them over all
        pairs with :func:`_on_pairs`)."""
        return self.labels(op.offset_distances(height, width).to(dtype))

    def forward(self, w: Tensor, ref_op: CorrelationOperator,
                query_op: CorrelationOperator | None = None, num_iter: int = 3,
                trace: bool = False) -> Tensor | tuple[Tensor, SolverTrace]:
        """The optimized filters (B, C, H, W); with ``trace``, ``(filters, SolverTrace)``
        (per-step per-image L_r, L_q, reg, their sum, and α, detached)."""
        use_prior = self.prior is not None
        if use_prior and query_op is None:
            raise ValueError("the query loss needs query features (query_op)")
        if num_iter == 0 and not trace:
            return w
        y, v, m = self.labels_per_offset(ref_op, *w.shape[-2:], w.dtype)
        a, b = activation_slopes(m)
        vpos, vneg, neg_vy = _on_pairs(ref_op, (v * a, v * b, -v * y), *w.shape[-2:])
        lam2 = self.reg_weight(ref_op, w.dtype)
        step = torch.exp(self.log_step_length).to(w.dtype)
        lq = (make_query_loss(self.prior, query_op, self.query_loss_form, w.shape[-2:], num_iter)
              if use_prior else None)
        steps: list[dict] | None = [] if trace else None
        problem = _Problem(ref_op, lq, num_iter, steps)
        out = _UnrolledDescent.apply(problem, w, ref_op.feat, vpos, vneg, neg_vy, lam2, step,
                                     *(lq.tensors if use_prior else ()))
        return (out, SolverTrace.from_steps(steps)) if trace else out

    def objective(self, w: Tensor, ref_op: CorrelationOperator,
                  query_op: CorrelationOperator | None = None) -> dict[str, Tensor]:
        """L_r, L_q, ½λ²‖w‖² and their sum ("loss"), per image (B,), differentiable.
        Computed from the definitions (L_q through the 4D prior on the volume), not the
        solver's shortcuts, so that the two can be checked against each other."""
        if self.prior is not None and query_op is None:
            raise ValueError("the query loss needs query features (query_op)")
        y, v, m = _on_pairs(ref_op, self.labels_per_offset(ref_op, *w.shape[-2:], w.dtype), *w.shape[-2:])
        r = v * robust_activation(ref_op.apply(w), m) - v * y
        lq = None
        if self.prior is not None:
            rq = self.prior(query_op.apply(w), query_op.partner_grid)
            lq = 0.5 * _per_image(rq * rq).flatten()
        return _losses(r, lq, w, self.reg_weight(ref_op, w.dtype))


def _on_pairs(op: CorrelationOperator, maps: tuple[Tensor, ...], height: int,
              width: int) -> tuple[Tensor, ...]:
    """Maps over displacements -> the same maps on every (partner, filter) pair, (M, H, W)
    or broadcastable to it (see the operators' ``expand``)."""
    return op.expand(torch.stack(maps), height, width).unbind(0)


def _losses(r: Tensor, lq: Tensor | None, w: Tensor, lam2: Tensor) -> dict[str, Tensor]:
    lr = 0.5 * _per_image(r * r).flatten()
    lq = torch.zeros_like(lr) if lq is None else lq
    reg = 0.5 * lam2 * _per_image(w * w).flatten()
    return {"L_r": lr, "L_q": lq, "reg": reg, "loss": lr + lq + reg}


class _Problem(NamedTuple):
    """The non-tensor inputs of :class:`_UnrolledDescent`."""
    op: CorrelationOperator             # the reference loss's operator A
    query_loss: QueryLoss | VolumeQueryLoss | None        # L_q, or None
    num_iter: int
    trace: list[dict] | None


class _Step(NamedTuple):
    """What one step computed and its reverse pass reads (saved with ``save_for_backward``)."""
    w: Tensor                           # filters before the step
    s: Tensor                           # scores A w
    sgn: Tensor                         # sign(s)
    d: Tensor                           # v+ σ'(s)
    r: Tensor                           # residual d s − v+ y
    u: Tensor                           # d r
    g: Tensor                           # gradient
    ag: Tensor                          # A g
    h: Tensor                           # d A g
    mg: Tensor | None                   # M g (query loss only)
    gg: Tensor                          # ‖g‖², per filter or per image
    den: Tensor                         # the step length's denominator
    alpha: Tensor                       # α
    sa: Tensor                          # exp(γ) α


class _UnrolledDescent(torch.autograd.Function):
    """The ``num_iter`` steps as one autograd node, with the reverse pass written out.

    Forward keeps what each step computed (through ``save_for_backward``, so memory
    accounting and saved-tensor hooks see it); backward walks the steps in reverse with the
    adjoint recurrences of w ← w − γα g (derived in notebook 03), updating its score-sized
    adjoints in place. One node instead of ~40 per step: no per-op bookkeeping, fewer passes
    and allocations over the (B, M, H, W) scores, and the gradients of the query loss's tensors
    (global: the Gram's Q̄ = Σ Γ(x)ᵀ Γ(x̄)) accumulated in one buffer each. Checked against finite differences
    (gradcheck) and the authors' gradients; not twice differentiable (second derivatives raise).
    """

    @staticmethod
    def forward(ctx, problem: _Problem, w, feat, vpos, vneg, neg_vy, lam2, step, *lq_tensors):
        op, lq, num_iter, trace = problem
        use_prior = lq is not None
        reduce = _per_image if use_prior else _per_filter
        s = op.apply(w)
        # the query loss's residue of each application (e.g. R A x through the volume), which its
        # reverse pass would otherwise recompute: w0's first, then one per step
        residues: list[tuple[Tensor, ...]] = []
        mw = None
        if use_prior:
            mw, res = lq.apply_saving(w)
            residues.append(res)
        steps: list[_Step] = []
        for it in range(num_iter + (trace is not None)):   # one more pass only to trace the end
            sgn, d, r = _residual(s, vpos, vneg, neg_vy)
            if trace is not None:
                energy_q = 0.5 * _per_image(w * mw).flatten() if use_prior else None
                trace.append({"step": it, **_losses(r, energy_q, w, lam2)})
            if it == num_iter:
                break
            u = d * r
            g = op.transpose(u).add_(w * lam2)
            if use_prior:
                g += mw
            ag = op.apply(g)
            gg = reduce(_per_filter(g * g))
            h = d * ag
            den = reduce(_per_filter(h * h)) + lam2 * gg
            mg = None
            if use_prior:
                mg, res = lq.apply_saving(g)
                residues.append(res)
                den += _per_image(g * mg)
            alpha = gg / den.clamp_min(1e-8)
            if trace is not None:
                trace[-1]["alpha"] = alpha.flatten(1).clone()
            sa = step * alpha
            steps.append(_Step(w, s, sgn, d, r, u, g, ag, h, mg, gg, den, alpha, sa))
            w = torch.addcmul(w, sa, g, value=-1.0)
            if it + 1 < num_iter or trace is not None:      # s and M w are read again only then
                s = torch.addcmul(s, sa, ag, value=-1.0)
                if use_prior:
                    mw = torch.addcmul(mw, sa, mg, value=-1.0)
        # the query loss's tensors (the Gram) go through save_for_backward like every other
        # tensor the backward reads; the loss is rebuilt from them
        ctx.op, ctx.rebuild_lq, ctx.n_lq = op, lq.rebuild() if use_prior else None, len(lq_tensors)
        ctx.n_res = (len(residues), len(residues[0]) if residues else 0)
        ctx.save_for_backward(steps[0].w if steps else w, vpos, vneg, neg_vy, lam2, step, *lq_tensors,
                              *(t for res in residues for t in res),
                              *(t for saved in steps for t in saved))
        return w if steps else w.clone()

    @staticmethod
    def backward(ctx, w_bar):
        if torch.is_grad_enabled():
            # create_graph=True (double backward, hvp, vhp, hessian): the reverse pass below is
            # not itself differentiated; once_differentiable's error would hang on outputs that
            # autograd.grad(inputs=...) never visits, and the second derivative come out wrong.
            raise RuntimeError(
                "GOCor's unrolled solver is differentiable once: its backward ran with "
                "create_graph=True (double backward, torch.autograd.functional.hvp/hessian, "
                "gradient penalties through the volume), which it does not support. Take "
                "second-order terms around the GOCor module (detach its output there), or by "
                "finite differences of first gradients.")
        with _autocast_off():
            return _UnrolledDescent._backward(ctx, w_bar)

    @staticmethod
    def _backward(ctx, w_bar):
        w0, vpos, vneg, neg_vy, lam2, step, *flat = ctx.saved_tensors
        lq_tensors, flat = flat[:ctx.n_lq], flat[ctx.n_lq:]
        n_apps, per_app = ctx.n_res
        res_flat, flat = flat[:n_apps * per_app], flat[n_apps * per_app:]
        residues = [tuple(res_flat[i * per_app:(i + 1) * per_app]) for i in range(n_apps)]
        op = ctx.op
        lq = ctx.rebuild_lq(*lq_tensors) if lq_tensors else None
        lq_needs = ctx.needs_input_grad[8:]
        n = len(_Step._fields)
        steps = [_Step(*flat[i:i + n]) for i in range(0, len(flat), n)]
        use_prior = lq is not None
        reduce = _per_image if use_prior else _per_filter
        s_bar = mw_bar = feat_bar = lq_bar = None
        vpos_bar = vneg_bar = neg_vy_bar = lam2_bar = step_bar = 0.0

        def gram_adjoint(x, x_bar, residue):
            """For mx = M x: Mᵀ x̄, accumulating the gradients of the query loss's tensors
            (global: Q̄ += Γ(x)ᵀ Γ(x̄)) over all steps."""
            nonlocal lq_bar
            x_grad, lq_bar = lq.accumulate_vjp(x, x_bar, lq_bar, lq_needs, residue)
            return x_grad

        for i in reversed(range(len(steps))):
            w, s, sgn, d, r, u, g, ag, h, mg, gg, den, alpha, sa = steps[i]
            # w' = w − sa g, s' = s − sa ag, mw' = mw − sa mg
            sa_bar = -reduce(_per_filter(g * w_bar))
            g_bar = -sa * w_bar
            ag_bar = mg_bar = None
            if s_bar is not None:
                sa_bar -= reduce(_per_filter(ag * s_bar))
                ag_bar = -sa * s_bar
            if mw_bar is not None:
                sa_bar -= _per_image(mg * mw_bar)
                mg_bar = -sa * mw_bar
            # sa = γ α, α = gg / max(den, ε), den = ‖h‖² + λ² gg [+ <g, mg>], h = d ag
            step_bar = step_bar + (alpha * sa_bar).sum()
            alpha_bar = step * sa_bar
            den_c = den.clamp_min(1e-8)
            den_bar = torch.where(den >= 1e-8, -alpha_bar * alpha / den_c, 0.0)
            gg_bar = alpha_bar / den_c + lam2 * den_bar
            lam2_bar = lam2_bar + (den_bar * gg).sum()
            h_bar = (2.0 * den_bar) * h
            d_bar = h_bar * ag
            h_bar *= d                                      # now ∂/∂ag of the ‖h‖² term
            ag_bar = h_bar if ag_bar is None else ag_bar.add_(h_bar)
            g_bar.addcmul_(2.0 * gg_bar, g)
            if use_prior:
                g_bar.addcmul_(den_bar, mg)
                mg_bar = den_bar * g if mg_bar is None else mg_bar.addcmul_(den_bar, g)
                g_bar += gram_adjoint(g, mg_bar, residues[i + 1])
            # ag = A g
            ag_t, ag_f = op.transpose_and_feat_grad(g, ag_bar)
            g_bar += ag_t
            feat_bar = _add(feat_bar, ag_f)
            # g = Aᵀ u + λ² w [+ mw], u = d r
            u_bar = op.apply(g_bar)
            feat_bar = feat_bar + op.feat_grad(g_bar, u)
            lam2_bar = lam2_bar + (g_bar * w).sum()
            w_bar = torch.addcmul(w_bar, lam2, g_bar)
            if use_prior:
                mw_bar = g_bar if mw_bar is None else mw_bar + g_bar
            # r = d s + (−v y), d = vpos + vneg sign(s)
            d_bar.addcmul_(u_bar, r)
            r_bar = u_bar.mul_(d)                           # in place: u_bar is not read again
            d_bar.addcmul_(r_bar, s)
            s_bar = r_bar * d if s_bar is None else s_bar.addcmul_(r_bar, d)
            neg_vy_bar = neg_vy_bar + r_bar.sum_to_size(neg_vy.shape)
            vpos_bar = vpos_bar + d_bar.sum_to_size(vpos.shape)
            vneg_bar = vneg_bar + d_bar.mul_(sgn).sum_to_size(vneg.shape)
        # s = A w0, mw = M w0
        if s_bar is not None:
            s_t, s_f = op.transpose_and_feat_grad(w0, s_bar)
            w_bar = w_bar + s_t
            feat_bar = _add(feat_bar, s_f)
        if mw_bar is not None:
            w_bar = w_bar + gram_adjoint(w0, mw_bar, residues[0])
        as_param = lambda t, like: t.reshape(like.shape) if torch.is_tensor(t) else None
        lq_grads = tuple(lq_bar) if lq_bar is not None else (None,) * ctx.n_lq
        return (None, w_bar, feat_bar, as_param(vpos_bar, vpos), as_param(vneg_bar, vneg),
                as_param(neg_vy_bar, neg_vy), as_param(lam2_bar, lam2), as_param(step_bar, step), *lq_grads)


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` in this thread."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:                                   # torch < 2.4
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return device_type == "cuda" and torch.is_autocast_enabled()


def autocast_dtype(device_type: str) -> torch.dtype:
    """The dtype autocast casts matmuls to on ``device_type``."""
    try:
        return torch.get_autocast_dtype(device_type)
    except AttributeError:                              # torch < 2.4
        return torch.get_autocast_cpu_dtype() if device_type == "cpu" else torch.get_autocast_gpu_dtype()


def _autocast_off() -> contextlib.ExitStack:
    """Autocast disabled where it is on: the reverse pass works in the dtype the forward saved
    (float32 under autocast, see :meth:`gocor.module.GlobalGOCor.forward`). Nothing is entered
    when autocast is off (torch.compile cannot trace entering it)."""
    stack = contextlib.ExitStack()
    for device in ("cpu", "cuda"):
        if autocast_enabled(device):
            stack.enter_context(torch.autocast(device, enabled=False))
    return stack


def _residual(s: Tensor, vpos: Tensor, vneg: Tensor, neg_vy: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """sign(s), d = v+ σ'(s) and the residual r = v+ σ(s) − v+ y = d s − v+ y."""
    sgn = torch.sign(s)
    d = torch.addcmul(vpos, vneg, sgn)
    return sgn, d, torch.addcmul(neg_vy, d, s)


def _add(a: Tensor | None, b: Tensor) -> Tensor:
    return b if a is None else a + b
