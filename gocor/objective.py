"""The learned objective of GOCor (Sec. 3.2-3.3 of the paper).

Reference loss, for filter p and partner q with score s = <w_p, f^r_q>:

    r_pq = v+(δ) · σ(s; m(δ)) − v+(δ) · y(δ),      L_r = ½ Σ r²

with label y, weight v+ and mask m learned as functions of the distance δ = |p − q|
through triangular bins. Query loss: L_q = ½ ‖R(C(w, f^q))‖² with R a separable 4D
convolution (the prior on the correspondence volume). R and Rᵀ here are the definition;
the solver never builds R's output (see :mod:`gocor.query_loss`).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def distance_bins(dist: Tensor, num_bins: int, bin_displacement: float) -> Tensor:
    """Triangular basis ρ_n(δ): dist (...) -> (num_bins, ...). The last bin stays 1 far away."""
    x = dist.unsqueeze(0) / bin_displacement
    n = torch.arange(num_bins, dtype=dist.dtype, device=dist.device).view(-1, *([1] * dist.dim()))
    rho = (1.0 - (x - n).abs()).clamp(min=0.0)
    last = (1.0 + x[0] - (num_bins - 1)).clamp(0.0, 1.0)
    return torch.cat([rho[:-1], last.unsqueeze(0)], dim=0)


def robust_activation(s: Tensor, m: Tensor) -> Tensor:
    """σ(s; m) = (1−m)/2 · |s| + (1+m)/2 · s: slope 1 for s > 0, slope m for s < 0."""
    return 0.5 * (1.0 - m) * s.abs() + 0.5 * (1.0 + m) * s


def activation_slopes(m: Tensor) -> tuple[Tensor, Tensor]:
    """(a, b) with σ'(s; m) = a + b · sign(s): a = (1+m)/2, b = (1−m)/2."""
    return 0.5 * (1.0 + m), 0.5 * (1.0 - m)


def robust_activation_grad(s: Tensor, m: Tensor) -> Tensor:
    """σ'(s; m) with sign(s) treated as a constant (torch.sign has zero gradient)."""
    a, b = activation_slopes(m)
    return torch.addcmul(a, b, torch.sign(s))


class LearnedLabels(nn.Module):
    """Label y(δ), positive weight v+(δ) and mask m(δ), each K weights on the distance bins."""

    def __init__(self, num_bins: int = 10, bin_displacement: float = 0.5,
                 init_gauss_sigma: float = 1.0, v_minus_init_factor: float = 4.0):
        super().__init__()
        self.num_bins = num_bins
        self.bin_displacement = bin_displacement
        d = torch.arange(num_bins, dtype=torch.float32) * bin_displacement
        if init_gauss_sigma > 0:
            gauss = torch.exp(-0.5 * (d / init_gauss_sigma) ** 2)
        else:                                   # σ = 0: a label of 1 at δ = 0 only (the authors' convention)
            gauss = (d == 0).float()
        self.label = nn.Parameter(gauss - gauss.min())                           # θ^y
        self.weight = nn.Parameter(torch.ones(num_bins))                         # θ^+
        self.mask = nn.Parameter(v_minus_init_factor * torch.tanh(2.0 - d))       # θ^m

    def forward(self, dist: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """dist (...) -> y, v+, m, each shaped like dist."""
        rho = distance_bins(dist, self.num_bins, self.bin_displacement)

        def mix(theta: Tensor) -> Tensor:
            return torch.tensordot(theta.to(rho.dtype), rho, dims=1)

        return mix(self.label), mix(self.weight), torch.sigmoid(mix(self.mask))


class QueryPrior(nn.Module):
    """Separable 4D convolution R on a volume, with its adjoint.

    The volume (B, H'·W', H, W) is read as (B, H', W', H, W) = (query y, x, reference y, x); a
    local volume (B, (2r+1)², H, W) as (displacement y, x, reference y, x).
    R = conv over the reference dims (weight2, I -> O) ∘ conv over the query dims (weight1, 1 -> I),
    zero padding k//2, no bias (the authors' parametrization, kept for their weights).

    Computed as ONE 2D conv over the reference dims whose k² input channels are the
    query-shifted copies of the volume, with the combined kernel
    W[o, (a, b), c, d] = Σ_i weight2[o, i, c, d] · weight1[i, 0, a, b]:
    k⁴·O multiply-adds per volume entry instead of k²·I·(1 + O) (1296 vs 2448 for
    GLU-Net-GOCor's k=3, I=O=16), no grouped conv and no permutation copies: the
    shifted copies are laid out (B, H', W', H·W, k²), which is channels-last (B·H'·W', k², H, W).

    This is the definition of R (and holds its parameters); for global GOCor the solver never
    builds R's output but goes through :class:`gocor.query_loss.QueryLoss`, exact and much cheaper.
    """

    def __init__(self, kernel_size: int = 3, inter_dim: int = 16, output_dim: int = 16,
                 weight1_dims: str = "query"):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if weight1_dims not in ("query", "reference"):
            raise ValueError(f"weight1_dims must be 'query' or 'reference', got {weight1_dims!r}")
        self.kernel_size = kernel_size
        self.weight1_dims = weight1_dims
        self.padding = kernel_size // 2
        k = kernel_size
        self.weight1 = nn.Parameter(torch.empty(inter_dim, 1, k, k))
        self.weight2 = nn.Parameter(torch.empty(output_dim, inter_dim, k, k))
        nn.init.normal_(self.weight1, std=1.0 / k)
        nn.init.normal_(self.weight2, std=1.0 / (k * math.sqrt(inter_dim)))

    def kernel(self, dtype: torch.dtype) -> Tensor:
        """The combined kernel (O, k², k, k): input channel a·k + b is the query shift (a, b)."""
        return combined_kernel(self.weight1, self.weight2, dtype, self.weight1_dims)

    def forward(self, volume: Tensor, query_size: tuple[int, int]) -> Tensor:
        """R: (B, H'·W', H, W) -> (B, H'·W', H, W, O), contiguous (channels last)."""
        return conv4d(volume, query_size, self.kernel(volume.dtype))

    def adjoint(self, out: Tensor, query_size: tuple[int, int]) -> Tensor:
        """Rᵀ: (B, H'·W', H, W, O) -> (B, H'·W', H, W)."""
        return conv4d_adjoint(out, query_size, self.kernel(out.dtype))


def combined_kernel(weight1: Tensor, weight2: Tensor, dtype: torch.dtype,
                    weight1_dims: str = "query") -> Tensor:
    """W[o, (a, b), c, d] = Σ_i weight2[o, i, c, d] · weight1[i, 0, a, b], shape (O, k², k, k),
    (a, b) the query shift and (c, d) the reference shift. With ``weight1_dims="reference"``
    (the authors' local code: weight1 over the reference dims, weight2 over the displacements)
    W[o, (a, b), c, d] = Σ_i weight2[o, i, a, b] · weight1[i, 0, c, d]."""
    k = weight1.shape[-1]
    spec = "oicd,iab->oabcd" if weight1_dims == "query" else "oiab,icd->oabcd"
    w = torch.einsum(spec, weight2.to(dtype), weight1[:, 0].to(dtype))
    return w.reshape(w.shape[0], k * k, k, k)


def conv4d(volume: Tensor, query_size: tuple[int, int], kernel: Tensor) -> Tensor:
    """R of :class:`QueryPrior` with a combined kernel (O, k², k, k):
    (B, H'·W', H, W) -> (B, H'·W', H, W, O)."""
    b, nq, h, w = volume.shape
    x = F.conv2d(query_shifts(volume, query_size, kernel.shape[-1]), kernel, padding=kernel.shape[-1] // 2)
    return x.permute(0, 2, 3, 1).view(b, nq, h, w, -1)                       # x: (B·N', O, H, W), CL


def query_shifts(volume: Tensor, query_size: tuple[int, int], k: int) -> Tensor:
    """The k² query-shifted copies of a volume (B, H'·W', H, W), zero padded, as the input of
    :func:`conv4d`'s 2D conv: (B·H'·W', k², H, W), channels last (channel a·k + b: shift (a, b))."""
    b, nq, h, w = volume.shape
    hq, wq = query_size
    p = k // 2
    padded = F.pad(volume.reshape(b, hq, wq, h * w), (0, 0, p, p, p, p))
    shifted = torch.stack([padded[:, a:a + hq, c:c + wq] for a in range(k) for c in range(k)], dim=-1)
    return shifted.view(b * nq, h, w, k * k).permute(0, 3, 1, 2)


def conv4d_adjoint(out: Tensor, query_size: tuple[int, int], kernel: Tensor) -> Tensor:
    """Rᵀ of :func:`conv4d`: (B, H'·W', H, W, O) -> (B, H'·W', H, W)."""
    b, nq, h, w, o = out.shape
    hq, wq = query_size
    k = kernel.shape[-1]
    p = k // 2
    x = out.reshape(b * nq, h, w, o).permute(0, 3, 1, 2)                      # CL
    x = F.conv_transpose2d(x, kernel, padding=p)                              # (B·N', k², H, W)
    shifted = x.permute(0, 2, 3, 1).reshape(b, hq, wq, h * w, k * k).unbind(-1)
    # adjoint of the shifts: put each shifted copy back at its offset and sum
    padded = sum(F.pad(shifted[a * k + c], (0, 0, c, 2 * p - c, a, 2 * p - a))
                 for a in range(k) for c in range(k))
    return padded[:, p:p + hq, p:p + wq].reshape(b, nq, h, w)
