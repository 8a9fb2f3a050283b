"""The unrolled steepest-descent filter optimizer (Sec. 3.1 and 3.4 of the paper).

Written once over a pair of correlation operators (``ref_op`` for the reference loss,
``query_op`` for the query loss and the output), so that global and local GOCor differ
only in the operator. Each step:

    g = A_rᵀ(v+σ'(s) · r) + λ² w  [+ M w]                        (gradient)
    α = ‖g‖² / (‖v+σ'(s) · A_r g‖² + λ² ‖g‖²  [+ <g, M g>])     (exact Gauss-Newton step)
    w ← w − exp(γ) α g

with M = A_qᵀ Rᵀ R A_q the query loss's Hessian (<g, M g> = ‖R A_q g‖²), applied through
its patch Gram matrix (:class:`~gocor.query_loss.QueryLoss`). α is per filter, or per
image pair when the query loss couples all filters. Scores A_r w and M w are linear in w
and updated in place of recomputation.
"""
from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn as nn
from torch import Tensor

from .objective import LearnedLabels, QueryPrior, robust_activation
from .query_loss import QueryLoss


class CorrelationOperator(Protocol):
    """What the solver needs of a correlation: fixed features, a score scale, apply/transpose,
    and the distance of every (filter, partner) pair. See :mod:`gocor.correlation`."""

    feat: Tensor
    scale: float

    def apply(self, w: Tensor) -> Tensor: ...

    def transpose(self, scores: Tensor) -> Tensor: ...

    def distances(self, height: int, width: int) -> Tensor: ...


def _per_filter(x: Tensor) -> Tensor:
    return x.sum(1, keepdim=True)


def _per_image(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).sum(1).view(-1, 1, 1, 1)


class FilterOptimizer(nn.Module):
    """Minimizes L_r + L_q + ½λ²‖w‖² over filters w (B, C, H, W) by ``num_iter`` steps."""

    def __init__(self, labels: LearnedLabels, prior: QueryPrior | None = None,
                 init_step_length: float = 1.0, init_filter_reg: float = 1e-2,
                 min_filter_reg: float = 1e-5):
        super().__init__()
        self.labels = labels
        self.prior = prior
        self.log_step_length = nn.Parameter(torch.tensor([math.log(init_step_length)]))
        self.filter_reg = nn.Parameter(torch.tensor([init_filter_reg]))
        self.min_filter_reg = min_filter_reg

    def reg_weight(self, op: CorrelationOperator, dtype: torch.dtype) -> Tensor:
        """λ² = max(θ_λ², min²), times the operator's scale² (1/C² for local correlation)."""
        lam2 = (self.filter_reg * self.filter_reg).clamp(min=self.min_filter_reg ** 2)
        return lam2.to(dtype) * op.scale ** 2

    def forward(self, w: Tensor, ref_op: CorrelationOperator,
                query_op: CorrelationOperator | None = None, num_iter: int = 3,
                trace: list[dict] | None = None) -> Tensor:
        """Returns the optimized filters. If ``trace`` is a list, per-step diagnostics
        (per-image L_r, L_q, reg, their sum, and α) are appended to it, detached."""
        use_prior = self.prior is not None
        if use_prior and query_op is None:
            raise ValueError("the query loss needs query features (query_op)")
        if num_iter == 0 and trace is None:
            return w
        h, wd = w.shape[-2:]
        y, v, m = self.labels(ref_op.distances(h, wd).to(w.dtype))
        neg_vy = -v * y
        vpos, vneg = 0.5 * v * (1.0 + m), 0.5 * v * (1.0 - m)      # v+σ'(s) = vpos + vneg·sign(s)
        lam2 = self.reg_weight(ref_op, w.dtype)
        step = torch.exp(self.log_step_length).to(w.dtype)
        reduce = _per_image if use_prior else _per_filter
        query_loss = QueryLoss(self.prior, query_op.feat) if use_prior else None

        s = ref_op.apply(w)
        mw = query_loss.grad(w) if use_prior else None
        for it in range(num_iter + (trace is not None)):   # one more pass only to trace the end
            dact = torch.addcmul(vpos, vneg, torch.sign(s.detach()))        # v+ σ'(s), sign constant
            r = torch.addcmul(neg_vy, dact, s)                              # v+ σ(s) − v+ y, σ(s) = σ'(s)·s
            if trace is not None:
                lq = 0.5 * _per_image(w * mw).flatten() if use_prior else None
                losses = _losses(r, lq, w, lam2)
                trace.append({"step": it, **{k: t.detach() for k, t in losses.items()}})
            if it == num_iter:
                break
            g = ref_op.transpose(dact * r) + lam2 * w
            if use_prior:
                g = g + mw
            ag = ref_op.apply(g)
            gg = reduce(_per_filter(g * g))
            h = dact * ag
            den = reduce(_per_filter(h * h)) + lam2 * gg
            if use_prior:
                mg = query_loss.grad(g)
                den = den + _per_image(g * mg)
            alpha = gg / den.clamp_min(1e-8)
            if trace is not None:
                trace[-1]["alpha"] = alpha.detach().flatten(1).clone()
            sa = step * alpha
            w = torch.addcmul(w, sa, g, value=-1.0)
            if it + 1 < num_iter or trace is not None:      # s and M w are read again only then
                s = torch.addcmul(s, sa, ag, value=-1.0)
                if use_prior:
                    mw = torch.addcmul(mw, sa, mg, value=-1.0)
        return w

    def objective(self, w: Tensor, ref_op: CorrelationOperator,
                  query_op: CorrelationOperator | None = None) -> dict[str, Tensor]:
        """L_r, L_q, ½λ²‖w‖² and their sum ("loss"), per image (B,), differentiable.
        Computed from the definitions (L_q through the 4D prior on the volume), not the
        solver's shortcuts, so that the two can be checked against each other."""
        if self.prior is not None and query_op is None:
            raise ValueError("the query loss needs query features (query_op)")
        y, v, m = self.labels(ref_op.distances(*w.shape[-2:]).to(w.dtype))
        r = v * robust_activation(ref_op.apply(w), m) - v * y
        lq = None
        if self.prior is not None:
            rq = self.prior(query_op.apply(w), query_op.feat.shape[-2:])
            lq = 0.5 * _per_image(rq * rq).flatten()
        return _losses(r, lq, w, self.reg_weight(ref_op, w.dtype))


def _losses(r: Tensor, lq: Tensor | None, w: Tensor, lam2: Tensor) -> dict[str, Tensor]:
    lr = 0.5 * _per_image(r * r).flatten()
    lq = torch.zeros_like(lr) if lq is None else lq
    reg = 0.5 * lam2 * _per_image(w * w).flatten()
    return {"L_r": lr, "L_q": lq, "reg": reg, "loss": lr + lq + reg}
