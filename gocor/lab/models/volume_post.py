"""A learned 4D post-processing of a correlation volume: the capacity-matched control for GOCor.

    V' = V + Σ_o a_o · relu(R(V)_o + b_o)

R is the same separable 4D convolution as GOCor's query-loss prior
(:class:`gocor.objective.QueryPrior`), here applied to the volume directly instead of inside an
objective; a (readout) starts at zero, so training starts from plain correlation. With the
matcher's sizes it adds about as many parameters as GOCor's objective and initializers, so a gain
of GOCor over this control cannot be put down to parameter count alone.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from ...objective import QueryPrior


class VolumePost(nn.Module):
    def __init__(self, kernel_size: int = 3, inter_dim: int = 16, output_dim: int = 16):
        super().__init__()
        self.prior = QueryPrior(kernel_size, inter_dim, output_dim)
        self.bias = nn.Parameter(torch.zeros(output_dim))
        self.readout = nn.Parameter(torch.zeros(output_dim))

    def forward(self, volume: Tensor, query_size: tuple[int, int]) -> Tensor:
        """volume (B, H'·W', H, W), read as (query y, x) × (reference y, x) -> the same shape.
        A local volume (B, (2r+1)², H, W) is read with query_size (2r+1, 2r+1)."""
        return volume + torch.relu(self.prior(volume, query_size) + self.bias) @ self.readout
