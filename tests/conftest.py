from pathlib import Path

import pytest
import torch

from gocor import compat

DATA = Path(__file__).parent / "data"
REFERENCES = sorted(p.name for p in DATA.glob("*.npz"))
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))]


def load_reference(name: str, device: str = "cpu") -> dict:
    return compat.load_reference(DATA / name, device)


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def perturb(module: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Move every parameter away from its init, so tests see all of them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))
    return module
