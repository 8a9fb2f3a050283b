"""Teaching helpers for the notebooks: plots, the volume explorer, the hand-made ambiguous pair."""
from __future__ import annotations

import warnings
from pathlib import Path


def setup_notebook(seed: int) -> Path:
    """The notebooks' common setup: seed torch, quiet warnings, inline figure size; returns the
    repository root (notebooks run from notebooks/ or from the root)."""
    import matplotlib.pyplot as plt
    import torch

    warnings.filterwarnings("ignore")
    torch.manual_seed(seed)
    plt.rcParams["figure.dpi"] = 90
    cwd = Path.cwd()
    return cwd.parent if cwd.name == "notebooks" else cwd
