"""The device the kit runs on when none is named, and running a model over pairs in batches there."""
from __future__ import annotations

import torch
from torch import Tensor


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` when given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def batched(fn, source: Tensor, target: Tensor, device: torch.device, batch_size: int = 32) -> list:
    """``fn(source_batch, target_batch)`` over (N, 3, H, W) pairs in batches on ``device``, its
    outputs (a tensor or a tuple of tensors) moved back to the CPU, one entry per batch."""
    out = []
    for i in range(0, len(source), batch_size):
        r = fn(source[i:i + batch_size].to(device), target[i:i + batch_size].to(device))
        out.append(tuple(t.cpu() for t in r) if isinstance(r, tuple) else r.cpu())
    return out
