"""The unrolled steepest-descent filter optimizer (Sec. 3.1 and 3.4 of the paper).

Written once over a pair of correlation operators (``ref_op`` for the reference loss,
``query_op`` for the query loss and the output), so that global and local GOCor differ
only in the operator. Each step:

    g = A_rᵀ(v+σ'(s) · r) + λ² w  [+ A_qᵀ Rᵀ R A_q w]          (gradient)
    α = ‖g‖² / (‖v+σ'(s) · A_r g‖² + λ² ‖g‖²  [+ ‖R A_q g‖²])   (exact Gauss-Newton step)
    w ← w − exp(γ) α g

α is per filter, or per image pair when the query loss couples all filters. Scores
A_r w and R A_q w are linear in w and updated in place of recomputation.
"""
from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn as nn
from torch import Tensor

from .objective import LearnedLabels, QueryPrior, robust_activation, robust_activation_grad


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


class _SquaredNorm(torch.autograd.Function):
    """Per-image ‖x‖² as one read (a norm reduction) and a one-pass backward 2·g·x,
    for the large query-loss tensors where elementwise passes dominate."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1).square()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return x * (2.0 * grad).view(-1, *([1] * (x.dim() - 1)))


def _sq_per_image(x: Tensor) -> Tensor:
    return _SquaredNorm.apply(x).view(-1, 1, 1, 1)


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
        h, wd = w.shape[-2:]
        y, v, m = self.labels(ref_op.distances(h, wd).to(w.dtype))
        vy = v * y
        lam2 = self.reg_weight(ref_op, w.dtype)
        step = torch.exp(self.log_step_length).to(w.dtype)
        reduce = _per_image if use_prior else _per_filter
        query_size = query_op.feat.shape[-2:] if use_prior else None

        s = ref_op.apply(w)
        rq = self.prior(query_op.apply(w), query_size) if use_prior else None
        for it in range(num_iter + 1):
            vs = v * robust_activation(s, m)
            if trace is not None:
                losses = _losses(vs - vy, rq, w, lam2)
                trace.append({"step": it, **{k: t.detach() for k, t in losses.items()}})
            if it == num_iter:
                break
            dact = v * robust_activation_grad(s, m)
            g = ref_op.transpose(dact * (vs - vy)) + lam2 * w
            if use_prior:
                g = g + query_op.transpose(self.prior.adjoint(rq, query_size))
            ag = ref_op.apply(g)
            gg = reduce(_per_filter(g * g))
            den = reduce(_per_filter((dact * ag) ** 2)) + lam2 * gg
            if use_prior:
                rg = self.prior(query_op.apply(g), query_size)
                den = den + _sq_per_image(rg)
            alpha = gg / den.clamp_min(1e-8)
            if trace is not None:
                trace[-1]["alpha"] = alpha.detach().flatten(1).clone()
            sa = step * alpha
            w = w - sa * g
            if it + 1 < num_iter or trace is not None:      # scores are read again only then
                s = s - sa * ag
                if use_prior:
                    rq = torch.addcmul(rq, sa.view(-1, 1, 1, 1, 1), rg, value=-1.0)
        return w

    def objective(self, w: Tensor, ref_op: CorrelationOperator,
                  query_op: CorrelationOperator | None = None) -> dict[str, Tensor]:
        """L_r, L_q, ½λ²‖w‖² and their sum ("loss"), per image (B,), differentiable."""
        if self.prior is not None and query_op is None:
            raise ValueError("the query loss needs query features (query_op)")
        y, v, m = self.labels(ref_op.distances(*w.shape[-2:]).to(w.dtype))
        r = v * robust_activation(ref_op.apply(w), m) - v * y
        rq = self.prior(query_op.apply(w), query_op.feat.shape[-2:]) if self.prior is not None else None
        return _losses(r, rq, w, self.reg_weight(ref_op, w.dtype))


def _losses(r: Tensor, rq: Tensor | None, w: Tensor, lam2: Tensor) -> dict[str, Tensor]:
    lr = 0.5 * _per_image(r * r).flatten()
    lq = 0.5 * _sq_per_image(rq).flatten() if rq is not None else torch.zeros_like(lr)
    reg = 0.5 * lam2 * _per_image(w * w).flatten()
    return {"L_r": lr, "L_q": lq, "reg": reg, "loss": lr + lq + reg}
