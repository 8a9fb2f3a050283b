"""Which parameters learn how fast: GOCor's objective parameters (O(1) scalars) in an optimizer
group of their own, for the matcher and for the volume experiment alike."""
from __future__ import annotations

import torch

from ...module import gocor_modules


def objective_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The learned objectives' parameters of every GOCor module inside ``model``."""
    return [p for m in gocor_modules(model).values() for p in m.objective_parameters()]


def param_groups(model: torch.nn.Module, fast: list[torch.nn.Parameter], lr: float, scale: float) -> list[dict]:
    """Two optimizer groups: the ``fast`` parameters at ``scale`` × lr without weight decay, the
    rest at lr. Adam moves a parameter by about lr per step whatever its gradient's size, so O(1)
    scalars such as GOCor's label, weight and mask bins barely move at a network's lr."""
    ids = {id(p) for p in fast}
    return [{"params": [p for p in model.parameters() if id(p) not in ids]},
            {"params": [p for p in fast if p.requires_grad], "lr": scale * lr, "weight_decay": 0.0}]
