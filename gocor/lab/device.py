"""The device the kit runs on when none is named, and running a model over pairs in batches there."""
from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from .errors import UserError


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` when given, else CUDA when available, else CPU. A device that is not a device
    name, or a CUDA device this machine does not have, is a :class:`UserError` naming it (not a
    traceback from deep inside torch, nor a checkpoint "not readable" because its tensors could
    not be mapped there)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(f"device {device!r}: not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {str(device)!r}: CUDA is not available here (torch {torch.__version__}, "
                            f"{'built without CUDA' if torch.version.cuda is None else 'no GPU found'}); "
                            f"use --device cpu or leave --device out")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA "
                            f"device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return dev


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op threads set to ``threads`` (unchanged when None) inside the block, restored
    after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def machine_info() -> dict:
    """What fixes the float rounding of CPU training here: torch's version, its intra-op threads,
    the instruction set its kernels dispatch to (``cpu_capability``, e.g. AVX512 or AVX2) and the
    architecture. Two machines with equal records train bit for bit alike; where one differs,
    rounding differs in the last bits and training amplifies that step by step (a run ends like
    one more seed would, not equal to the last digit)."""
    import platform
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "machine": platform.machine()}


@torch.no_grad()
def batched(fn, source: Tensor, target: Tensor, device: torch.device, batch_size: int = 32) -> list:
    """``fn(source_batch, target_batch)`` over (N, 3, H, W) pairs in batches on ``device``, its
    outputs (a tensor or a tuple of tensors) moved back to the CPU, one entry per batch."""
    out = []
    for i in range(0, len(source), batch_size):
        r = fn(source[i:i + batch_size].to(device), target[i:i + batch_size].to(device))
        out.append(tuple(t.cpu() for t in r) if isinstance(r, tuple) else r.cpu())
    return out
