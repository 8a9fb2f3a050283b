"""What a function costs, independent of the machine.

- :func:`count_flops`: matmul/conv FLOPs (torch's own counter, grouped-conv backward fixed,
  in-place ``addmm_``/``baddbmm_`` counted like their out-of-place forms)
  plus elementwise and reduction FLOPs (one per output element of pointwise ops, one per
  input element of sums), forward and backward.
- :func:`saved_bytes`: memory autograd keeps for the backward pass (distinct storages).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

_SUMS = {torch.ops.aten.sum.dim_IntList, torch.ops.aten.sum.default, torch.ops.aten.mean.dim}


class _ElementwiseCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _SUMS:
            self.flops += args[0].numel()
        elif torch.Tag.pointwise in func.tags and isinstance(out, torch.Tensor) and out.is_floating_point():
            self.flops += out.numel()
        return out


def _conv_backward_flops(grad_out, x, weight, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """torch's own formula ignores ``groups`` (a depthwise conv is counted ``groups`` times over).
    Each requested gradient costs what the forward conv costs: 2 · batch · spatial · |weight|."""
    spatial = (x if transposed else grad_out)[2:]
    forward = 2 * x[0] * math.prod(spatial) * math.prod(weight)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def _accumulate_matmul_flops(_acc, a, b, out_shape=None, **kwargs) -> int:
    """In-place ``addmm_``/``baddbmm_`` (shapes (M, K), (K, N), optionally batched)."""
    return 2 * math.prod(a) * b[-1]


def count_flops(fn: Callable[[], object]) -> tuple[int, int]:
    """(matmul/conv FLOPs, elementwise FLOPs) of one call of ``fn``."""
    counter = _ElementwiseCounter()
    fixed = {torch.ops.aten.convolution_backward: _conv_backward_flops,
             torch.ops.aten.addmm_: _accumulate_matmul_flops,
             torch.ops.aten.baddbmm_: _accumulate_matmul_flops}
    with FlopCounterMode(display=False, custom_mapping=fixed) as mm, counter:
        fn()
    return int(mm.get_total_flops()), counter.flops


def saved_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the distinct tensor storages autograd saves for backward while ``fn`` runs."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())
