"""The query loss without the volume: L_q as a quadratic form on filter patches.

With the query features f^q fixed, the volume V[q, u] = <f^q_q, w_u> is linear in the
filters, and R reads it at query shifts s and reference shifts t (k×k each). So every
entry of R(V) is a bilinear form in the shifted query features Φ and the k×k patches Γ
of the filters,

    R(V)[o, q, u] = Σ_{s,t,c} K[o,s,t] Φ[q, (s,c)] Γ[u, (t,c)],    K = combined 4D kernel,

and summing its square over o and q leaves one matrix per image pair:

    ‖R(V)‖² = Σ_u Γ_u Q Γ_uᵀ,   Q[(t,c), (t',c')] = Σ_{s,s'} T[(t,t'), (s,s')] P[(s,c), (s',c')],
    T = Σ_o K[o,s,t] K[o,s',t'],   P = Φᵀ Φ   (Gram of the shifted query features).

Exact, borders included (zero padding is zero patches). The query loss's gradient
M w = C_qᵀ Rᵀ R C_q w is then fold(Γ Q): one (N × k²C) · (k²C × k²C) matmul instead of a
4D convolution and its adjoint over an O-channel volume, and nothing of volume size
(O·H'W'·HW entries) is ever stored for backward.
"""
from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from .correlation import GlobalCorrelation
from .objective import QueryPrior, combined_kernel, conv4d, conv4d_adjoint, query_shifts


def _unfold(x: Tensor, k: int) -> Tensor:
    b, c, h, w = x.shape
    p = k // 2
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, p, p, p, p))                # (B, H+2p, W+2p, C)
    sb, sy, sx, sc = xp.stride()
    return xp.as_strided((b, h, w, k, k, c), (sb, sy, sx, sy, sx, sc)).reshape(b, h * w, k * k * c)


def _fold(y: Tensor, size: tuple[int, int], k: int) -> Tensor:
    (h, w), p = size, k // 2
    b = y.shape[0]
    y = y.view(b, h, w, k, k, -1)
    out = y.new_zeros(b, h + 2 * p, w + 2 * p, y.shape[-1])
    for a in range(k):
        for c in range(k):
            out[:, a:a + h, c:c + w] += y[:, :, :, a, c]
    return out[:, p:p + h, p:p + w].permute(0, 3, 1, 2).contiguous()


class _Patches(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, k: int) -> Tensor:
        ctx.size, ctx.k = x.shape[-2:], k
        return _unfold(x, k)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _FoldPatches.apply(grad, ctx.size, ctx.k), None


class _FoldPatches(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: Tensor, size: tuple[int, int], k: int) -> Tensor:
        ctx.k = k
        return _fold(y, size, k)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _Patches.apply(grad, ctx.k), None, None


def patches(x: Tensor, k: int) -> Tensor:
    """k×k patches, zero padded, one row per position: (B, C, H, W) -> (B, H·W, k²·C),
    entry [y·W + x, (a·k + b)·C + c] = x[c, y + a − k//2, x + b − k//2]. (``F.unfold``
    transposed and shift-major; contiguous runs of C make it several times faster on CPU.)"""
    return _Patches.apply(x, k)


def fold_patches(y: Tensor, size: tuple[int, int], k: int) -> Tensor:
    """The adjoint of :func:`patches`: (B, H·W, k²·C) -> (B, C, H, W)."""
    return _FoldPatches.apply(y, tuple(size), k)


def _to_pairs(x: Tensor, k2: int) -> Tensor:
    """[b, s, c, s', c'] (B, k²C, k²C) -> [(s,s'), (b,c,c')]: the layout of the T-contraction
    (a copy of contiguous C-runs)."""
    b, d = x.shape[:2]
    c = d // k2
    return x.reshape(b, k2, c, k2, c).permute(1, 3, 0, 2, 4).reshape(k2 * k2, b * c * c)


def _from_pairs(x: Tensor, b: int, k2: int, symmetrize: bool = False) -> Tensor:
    """The inverse of :func:`_to_pairs`; with ``symmetrize``, plus its transpose (transposing
    C×C blocks, not whole rows)."""
    c = math.isqrt(x.shape[1] // b)
    x = x.view(k2, k2, b, c, c)
    out = x.new_empty(b, k2, c, k2, c)
    out.copy_(x.permute(2, 0, 3, 1, 4))
    if symmetrize:
        out += x.permute(2, 1, 4, 0, 3)
    return out.view(b, k2 * c, k2 * c)


def _pair_gram(phi: Tensor, k2: int) -> Tensor:
    """P = ΦᵀΦ in the layout of :func:`_to_pairs`."""
    return _to_pairs(torch.bmm(phi.transpose(1, 2), phi), k2)


class _ShiftedGram(torch.autograd.Function):
    """Q = T-contraction of P = ΦᵀΦ, with a hand-written backward that uses P's symmetry
    (one matmul for Φ̄ where autograd would do two)."""

    @staticmethod
    def forward(ctx, phi: Tensor, t: Tensor, k2: int) -> Tensor:
        p = _pair_gram(phi, k2)
        ctx.save_for_backward(phi, t, p)
        ctx.k2 = k2
        return _from_pairs(torch.mm(t, p), phi.shape[0], k2)

    @staticmethod
    def backward(ctx, grad: Tensor):
        phi, t, p = ctx.saved_tensors
        k2 = ctx.k2
        if torch.is_grad_enabled():           # double backward: P must be a function of Φ
            p = _pair_gram(phi, k2)
        grad = _to_pairs(grad, k2)
        grad_t = torch.mm(grad, p.t()) if ctx.needs_input_grad[1] else None
        grad_phi = None
        if ctx.needs_input_grad[0]:
            grad_p = _from_pairs(torch.mm(t.t(), grad), phi.shape[0], k2, symmetrize=True)  # P̄ + P̄ᵀ
            grad_phi = torch.bmm(phi, grad_p)
        return grad_phi, grad_t, None


def query_gram(prior: QueryPrior, query_feat: Tensor) -> Tensor:
    """Q (B, k²C, k²C) with ‖R(C(w, f^q))‖² = Σ_u Γ_u Q Γ_uᵀ, Γ = patches(w); see the module doc."""
    k2 = prior.kernel_size ** 2
    kern = prior.kernel(query_feat.dtype).flatten(2)                            # (O, s, t)
    t = torch.einsum("ost,opu->tusp", kern, kern).reshape(k2 * k2, k2 * k2)     # [(t,t'), (s,s')]
    return _ShiftedGram.apply(patches(query_feat, prior.kernel_size), t, k2)


def gram_apply(x_patches: Tensor, q: Tensor, size: tuple[int, int], k: int) -> Tensor:
    """fold(Γ Q): the Gram matrix applied to patches Γ (B, H·W, k²C) -> filters (B, C, H, W)."""
    return _fold(torch.bmm(x_patches, q), size, k)


def gram_vjp(x: Tensor, x_bar: Tensor, q: Tensor, k: int, q_bar: Tensor | None = None,
             need_q: bool = True) -> tuple[Tensor, Tensor | None]:
    """For y = M x = fold(Γ(x) Q) and a gradient x̄ wrt y: (Mᵀ x̄ = fold(Γ(x̄) Qᵀ), Q̄ = Γ(x)ᵀ Γ(x̄)).
    Q̄ is added in place to ``q_bar`` when given (one buffer over many applications)."""
    px_bar = patches(x_bar, k)
    x_grad = fold_patches(torch.bmm(px_bar, q.transpose(1, 2)), x.shape[-2:], k)
    if need_q:
        px_t = patches(x, k).transpose(1, 2)
        q_bar = torch.bmm(px_t, px_bar) if q_bar is None else q_bar.baddbmm_(px_t, px_bar)
    return x_grad, q_bar


class _GramApply(torch.autograd.Function):
    """fold(patches(w) Q): the query loss's Hessian applied to filters. Backward recomputes
    the patches from w (cheap, and still in cache when the big matmuls read them)."""

    @staticmethod
    def forward(ctx, w: Tensor, q: Tensor, k: int) -> Tensor:
        ctx.save_for_backward(w, q)
        ctx.k = k
        return gram_apply(_unfold(w, k), q, w.shape[-2:], k)

    @staticmethod
    def backward(ctx, grad: Tensor):
        w, q = ctx.saved_tensors
        return (*gram_vjp(w, grad, q, ctx.k, need_q=ctx.needs_input_grad[1]), None)


class QueryLoss:
    """L_q(w) = ½ ‖R(C(w, f^q))‖² = ½ Σ_u Γ_u Q Γ_uᵀ for fixed query features f^q (B, C, H', W'),
    on filters w (B, C, H, W): the one object for the query loss, used by the solver, the
    tests and notebook 02. It owns the Gram matrix Q = :attr:`gram` (B, k²C, k²C), built once
    from the prior and f^q (differentiable in both).

    - :meth:`apply`: M w = C_qᵀ Rᵀ R C_q w, so that L_q(w) = ½ <w, M w> (differentiable, twice);
    - :meth:`energy`: L_q(w) per image (B,);
    - :meth:`vjp`: the reverse pass of ``apply`` written out, for the solver's own backward.
    """

    def __init__(self, prior: QueryPrior, query_feat: Tensor):
        self.kernel_size = prior.kernel_size
        self.gram = query_gram(prior, query_feat)

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        """What the solver differentiates this loss through: the Gram matrix."""
        return (self.gram,)

    def rebuild(self):
        """A function of :attr:`tensors` giving this loss back (holds no tensor itself)."""
        return partial(_from_gram_tuple, kernel_size=self.kernel_size)

    def apply_saving(self, w: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """(M w, what :meth:`accumulate_vjp` reads of this application: nothing here)."""
        return self.apply(w), ()

    def accumulate_vjp(self, x: Tensor, x_bar: Tensor, acc: list | None,
                       needs: tuple[bool, ...], residue: tuple[Tensor, ...] = ()) -> tuple[Tensor, list]:
        """:meth:`vjp` with the gradients of :attr:`tensors` accumulated in the list ``acc``."""
        x_grad, q_bar = self.vjp(x, x_bar, acc[0] if acc else None, needs[0])
        return x_grad, [q_bar]

    @classmethod
    def from_gram(cls, gram: Tensor, kernel_size: int) -> "QueryLoss":
        """The query loss of a Gram matrix already built (the solver's reverse pass)."""
        lq = cls.__new__(cls)
        lq.kernel_size, lq.gram = kernel_size, gram
        return lq

    def apply(self, w: Tensor) -> Tensor:
        """M w (B, C, H, W)."""
        if not torch.is_grad_enabled():
            return gram_apply(_unfold(w, self.kernel_size), self.gram, w.shape[-2:], self.kernel_size)
        return _GramApply.apply(w, self.gram, self.kernel_size)

    def energy(self, w: Tensor) -> Tensor:
        """L_q(w) = ½ <w, M w> per image, (B,)."""
        return 0.5 * (w * self.apply(w)).flatten(1).sum(1)

    def vjp(self, x: Tensor, x_bar: Tensor, gram_bar: Tensor | None = None,
            need_gram: bool = True) -> tuple[Tensor, Tensor | None]:
        """For y = M x and ȳ = ``x_bar``: (Mᵀ ȳ, Q̄ = Γ(x)ᵀ Γ(ȳ)), Q̄ added in place to
        ``gram_bar`` when given (one buffer over many applications)."""
        return gram_vjp(x, x_bar, self.gram, self.kernel_size, gram_bar, need_gram)


def _from_gram_tuple(gram: Tensor, kernel_size: int) -> QueryLoss:
    return QueryLoss.from_gram(gram, kernel_size)


class VolumeQueryLoss:
    """L_q(w) = ½ ‖R(A_q w)‖² through the volume, for any correlation operator A_q (local GOCor's
    query loss: R reads the (2r+1)² window's displacements as its query dims). M w = A_qᵀ Rᵀ R A_q w.

    The same interface as :class:`QueryLoss`; the gradients of the query features and of R's
    weights come from autograd on <R A x̄, R A x> = <x̄, M x> (M is symmetric).
    """

    def __init__(self, prior: QueryPrior, query_op):
        self._op = query_op
        self.tensors = (query_op.feat, prior.weight1, prior.weight2)
        self._weight1_dims = prior.weight1_dims

    @classmethod
    def from_tensors(cls, query_op, tensors: tuple[Tensor, Tensor, Tensor],
                     weight1_dims: str = "query") -> "VolumeQueryLoss":
        """The loss on given (query features, R's two weights): what :meth:`rebuild` makes."""
        loss = cls.__new__(cls)
        loss._op, loss.tensors, loss._weight1_dims = query_op, tensors, weight1_dims
        return loss

    def rebuild(self):
        op, dims = self._op, self._weight1_dims
        return lambda feat, w1, w2: VolumeQueryLoss.from_tensors(op.like(feat), (feat, w1, w2), dims)

    def _residual(self, w: Tensor, tensors: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, object, Tensor]:
        """R(A w) (B, M, H, W, O), the operator A on these features and R's combined kernel
        (one 4D kernel rather than the separable form: see the README's Benchmark section)."""
        feat, w1, w2 = tensors
        op = self._op.like(feat)
        kernel = combined_kernel(w1, w2, w.dtype, self._weight1_dims)
        return conv4d(op.apply(w), op.partner_grid, kernel), op, kernel

    def apply(self, w: Tensor) -> Tensor:
        """M w (B, C, H, W), differentiable."""
        rv, op, kernel = self._residual(w, self.tensors)
        return op.transpose(conv4d_adjoint(rv, op.partner_grid, kernel))

    def energy(self, w: Tensor) -> Tensor:
        """L_q(w) per image, (B,)."""
        rv = self._residual(w, self.tensors)[0]
        return 0.5 * rv.square().reshape(w.shape[0], -1).sum(1)

    def apply_saving(self, w: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """(M w, its residue for :meth:`accumulate_vjp`: the shifts of A w, a = R A w and Rᵀ a),
        the same M w as :meth:`apply`, without autograd."""
        feat, w1, w2 = self.tensors
        op = self._op if self._op.feat is feat else self._op.like(feat)
        with torch.no_grad():
            kernel = combined_kernel(w1, w2, w.dtype, self._weight1_dims)
            k = kernel.shape[-1]
            va = op.apply(w)
            sa = query_shifts(va, op.partner_grid, k)
            a = F.conv2d(sa, kernel, padding=k // 2)
            rta = conv4d_adjoint(_channels_last_volume(a, va.shape), op.partner_grid, kernel)
            return op.transpose(rta), (sa, a, rta)

    def accumulate_vjp(self, x: Tensor, x_bar: Tensor, acc: list | None,
                       needs: tuple[bool, ...], residue: tuple[Tensor, ...] = ()) -> tuple[Tensor, list]:
        """For y = M x and ȳ = ``x_bar``: (M ȳ, the gradients of :attr:`tensors` added to ``acc``);
        ``residue``: what :meth:`apply_saving` kept of M x (else recomputed).

        The gradients are those of <x̄, M x> = <R A x̄, R A x> (M is symmetric), written out so
        that each of the two residuals a = R A x, b = R A x̄ is computed once:
        M ȳ = Aᵀ Rᵀ b; ∂/∂f^q = feat_grad(x, Rᵀ b) + feat_grad(x̄, Rᵀ a); ∂/∂K (R's combined
        kernel) = the conv's weight gradient of (shifts of A x, b) plus (shifts of A x̄, a), and
        the two weights through the (tiny) product that makes K."""
        feat, w1, w2 = self.tensors
        op = self._op if self._op.feat is feat else self._op.like(feat)
        grid, dims = op.partner_grid, self._weight1_dims
        with torch.no_grad():
            kernel = combined_kernel(w1, w2, x.dtype, dims)
            k = kernel.shape[-1]
            vb = op.apply(x_bar)
            sb = query_shifts(vb, grid, k)
            b = F.conv2d(sb, kernel, padding=k // 2)                          # (B·N', O, H, W), CL
            rtb = conv4d_adjoint(_channels_last_volume(b, vb.shape), grid, kernel)
            x_grad = op.transpose(rtb)
            acc = acc or [None] * 3
            if not any(needs):
                return x_grad, acc
            if residue:
                sa, a, rta = residue
            else:
                va = op.apply(x)
                sa = query_shifts(va, grid, k)
                a = F.conv2d(sa, kernel, padding=k // 2)
                rta = conv4d_adjoint(_channels_last_volume(a, va.shape), grid, kernel)
            feat_bar = kernel_bar = None
            if needs[0]:
                feat_bar = op.feat_grad(x, rtb) + op.feat_grad(x_bar, rta)
            if needs[1] or needs[2]:
                kernel_bar = (torch.nn.grad.conv2d_weight(sa, kernel.shape, b, padding=k // 2)
                              + torch.nn.grad.conv2d_weight(sb, kernel.shape, a, padding=k // 2))
        new = [feat_bar, None, None]
        if kernel_bar is not None:
            with torch.enable_grad():
                leaves = (w1.detach().requires_grad_(needs[1]), w2.detach().requires_grad_(needs[2]))
                wanted = [t for t, n in zip(leaves, needs[1:]) if n]
                grads = iter(torch.autograd.grad(combined_kernel(*leaves, x.dtype, dims), wanted, kernel_bar))
            new[1:] = [next(grads) if n else None for n in needs[1:]]
        return x_grad, [n if a_ is None else (a_ if n is None else a_ + n) for a_, n in zip(acc, new)]


def _channels_last_volume(x: Tensor, shape: torch.Size) -> Tensor:
    """A conv output (B·N', O, H, W) (channels last) as :func:`conv4d` returns it: (B, N', H, W, O)."""
    b, nq, h, w = shape
    return x.permute(0, 2, 3, 1).reshape(b, nq, h, w, -1)


QUERY_LOSS_FORMS = ("auto", "gram", "volume")


def query_loss_flops(form: str, batch: int, channels: int, filter_size: tuple[int, int],
                     query_size: tuple[int, int], kernel_size: int, out_dim: int, num_iter: int) -> float:
    """Matmul/conv FLOPs of the query loss over one solve, forward and backward, in ``form``
    ("gram" or "volume") for global correlation: filters (B, C, H, W), query features (B, C, H', W').

    Gram: building Q (ΦᵀΦ and the T-contraction), 1 + ``num_iter`` applications of Q forward,
    two matmuls per application backward (Mᵀx̄ and Q̄), and Q̄ back to Φ: it grows as (k²C)².
    Volume: each application is A, R, Rᵀ, Aᵀ (2·C·N·N' + k⁴·O·N·N' multiply-adds per image);
    the backward of one costs about three more. It grows as C·N·N'."""
    n, nq, k2 = filter_size[0] * filter_size[1], query_size[0] * query_size[1], kernel_size ** 2
    applications = 1 + num_iter
    if form == "gram":
        d = k2 * channels
        build = 2 * batch * nq * d * d + 2 * k2 ** 4 * batch * channels ** 2
        return 2 * build + applications * 3 * 2 * batch * n * d * d
    if form == "volume":
        per_application = 2 * batch * n * nq * (2 * channels + 2 * k2 * k2 * out_dim)
        return applications * 4 * per_application
    raise ValueError(f"query loss form must be 'gram' or 'volume', got {form!r}")


# Seconds per FLOP of the volume form (convolutions with 9 input channels over H×W images) over
# those of the Gram form (large batched matmuls), measured on the CPU at C = 64-512 (1.3-1.7;
# scripts/query_loss_crossover.py). It puts the crossover at 16×16 near C = 128, where the two
# forms measured equal.
VOLUME_FLOP_COST = 1.5


def choose_query_loss_form(batch: int, channels: int, filter_size: tuple[int, int],
                           query_size: tuple[int, int], kernel_size: int, out_dim: int,
                           num_iter: int) -> str:
    """The cheaper form for these sizes: "gram" or "volume" (see :func:`query_loss_flops`)."""
    args = (batch, channels, filter_size, query_size, kernel_size, out_dim, num_iter)
    gram = query_loss_flops("gram", *args)
    return "gram" if gram <= VOLUME_FLOP_COST * query_loss_flops("volume", *args) else "volume"


def make_query_loss(prior: QueryPrior, query_op, form: str = "auto", filter_size: tuple[int, int] | None = None,
                    num_iter: int = 3) -> QueryLoss | VolumeQueryLoss:
    """The query loss of ``prior`` on the volume of ``query_op``. For global correlation (all
    query positions on a grid) ``form`` picks the Gram matrix ("gram"), the volume ("volume") or
    the cheaper of the two for these sizes ("auto", needs ``filter_size`` (H, W)); both are exact.
    Local correlation always goes through the volume."""
    if form not in QUERY_LOSS_FORMS:
        raise ValueError(f"query_loss_form must be one of {QUERY_LOSS_FORMS}, got {form!r}")
    if not isinstance(query_op, GlobalCorrelation):
        return VolumeQueryLoss(prior, query_op)
    if form == "auto":
        if filter_size is None:
            raise ValueError("form='auto' needs filter_size (H, W) to compare the forms' costs")
        b, c = query_op.feat.shape[:2]
        form = choose_query_loss_form(b, c, tuple(filter_size), query_op.partner_grid, prior.kernel_size,
                                      prior.weight2.shape[0], num_iter)
    if form == "gram":
        return QueryLoss(prior, query_op.feat)
    return VolumeQueryLoss(prior, query_op)
