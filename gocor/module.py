"""GOCor modules: drop-in replacements for the global and local correlation layers.

    w⁰ = initializer(f^r);  w = FilterOptimizer(w⁰) over the operator pair;  volume = C(w, f^q)

Global and local GOCor share every part but the correlation operator.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
from torch import Tensor

from .correlation import GlobalCorrelation, LocalCorrelation
from .initializers import GLOBAL_INITIALIZERS, LOCAL_INITIALIZERS
from .objective import LearnedLabels, QueryPrior
from .solver import FilterOptimizer, SolverTrace


@dataclass(frozen=True)
class GOCorConfig:
    """Hyper-parameters; the defaults are the paper's (GLU-Net-GOCor for global)."""

    num_iter: int = 3
    initializer: str = "flexible_context"
    query_loss: bool = True             # L_q with the 4D conv prior (global: on, the paper's; local: off)
    query_loss_form: str = "auto"       # global L_q via "gram" (Q, grows as (k²C)²), "volume", or "auto" (cheaper)
    prior_kernel_size: int = 3
    prior_inter_dim: int = 16
    prior_output_dim: int = 16
    search_radius: int = 4              # local only
    num_dist_bins: int = 10
    bin_displacement: float = 0.5
    init_gauss_sigma: float = 1.0
    v_minus_init_factor: float = 4.0
    init_step_length: float = 1.0
    init_filter_reg: float = 1e-2
    min_filter_reg: float = 1e-5

    def replace(self, **changes) -> "GOCorConfig":
        return replace(self, **changes)


LOCAL_DEFAULTS = GOCorConfig(initializer="simple", query_loss=False)


@dataclass(frozen=True)
class LearnedObjective:
    """A GOCor module's learned objective read back (detached, on the module's device).

    Distances are in cells of the module's feature grid. Conventions are the module's own:
    λ² = max(θ_λ², min_filter_reg²) (so only |θ_λ| matters, and the floor applies), step = exp(γ).
    """

    distances: Tensor                   # (N,) the distances δ the curves are read at
    y: Tensor                           # (N,) label y(δ)
    v_plus: Tensor                      # (N,) weight v+(δ)
    m: Tensor                           # (N,) mask m(δ) in (0, 1): the slope of σ for negative scores
    filter_reg: float                   # θ_λ as stored (its sign is irrelevant)
    reg: float                          # effective λ = max(|θ_λ|, min_filter_reg), before the operator's scale
    step_length: float                  # effective step factor exp(γ)


def gocor_modules(model: nn.Module) -> dict[str, "_GOCor"]:
    """Every GOCor module (global or local) inside ``model``, by its qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, _GOCor)}


def check_features(ref: Tensor, query: Tensor, feature_dim: int, same_size: bool) -> None:
    """Raise TypeError/ValueError naming the problem instead of returning a wrong volume."""
    for name, t in (("reference_feat", ref), ("query_feat", query)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D (B, C, H, W), got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.shape[1] != feature_dim:
            raise ValueError(f"{name} has {t.shape[1]} channels, the module expects {feature_dim}")
        if t.shape[-2] < 1 or t.shape[-1] < 1 or t.shape[0] < 1:
            raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    if ref.dtype != query.dtype:
        raise TypeError(f"dtype mismatch: reference_feat {ref.dtype}, query_feat {query.dtype}")
    if ref.device != query.device:
        raise ValueError(f"device mismatch: reference_feat on {ref.device}, query_feat on {query.device}")
    if ref.shape[0] != query.shape[0]:
        raise ValueError(f"batch mismatch: reference_feat {ref.shape[0]}, query_feat {query.shape[0]}")
    if same_size and ref.shape[-2:] != query.shape[-2:]:
        raise ValueError(f"reference_feat {tuple(ref.shape[-2:])} and query_feat "
                         f"{tuple(query.shape[-2:])} must have the same spatial size here")


class _GOCor(nn.Module):
    def __init__(self, feature_dim: int, config: GOCorConfig, initializers: dict):
        super().__init__()
        if config.initializer not in initializers:
            raise ValueError(f"unknown initializer {config.initializer!r}; choose from {sorted(initializers)}")
        self.feature_dim = feature_dim
        self.config = config
        self.initializer = initializers[config.initializer](feature_dim)
        labels = LearnedLabels(config.num_dist_bins, config.bin_displacement,
                               config.init_gauss_sigma, config.v_minus_init_factor)
        prior = (QueryPrior(config.prior_kernel_size, config.prior_inter_dim, config.prior_output_dim)
                 if config.query_loss else None)
        self.solver = FilterOptimizer(labels, prior, config.init_step_length,
                                      config.init_filter_reg, config.min_filter_reg,
                                      config.query_loss_form)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the solver was called ``optimizer`` before: old checkpoints keep loading
        old = prefix + "optimizer."
        for key in [k for k in state_dict if k.startswith(old)]:
            state_dict[prefix + "solver." + key[len(old):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def operator(self, feat: Tensor):
        raise NotImplementedError

    def objective_parameters(self) -> list[nn.Parameter]:
        """The learned objective's parameters (label, weight, mask, λ, step length, prior): O(1)
        scalars that must move by O(1), e.g. for a faster learning rate of their own."""
        return list(self.solver.parameters())

    def freeze_objective(self) -> "_GOCor":
        """Stop learning the objective (y, v+, m, λ, step length, prior): its parameters get
        ``requires_grad=False``, so no optimizer built afterwards moves them (weight decay
        included). The initializer stays trainable. Returns the module."""
        self.solver.requires_grad_(False)
        return self

    @torch.no_grad()
    def learned_objective(self, distances: Tensor | list[float] | None = None) -> LearnedObjective:
        """The objective as learned: y, v+, m at ``distances`` (cells; default 0 to the last
        bin's start in fifths of a bin), the effective λ and step length."""
        labels = self.solver.labels
        if distances is None:
            distances = torch.arange(5 * (labels.num_bins - 1) + 1) * (labels.bin_displacement / 5)
        dist = torch.as_tensor(distances, dtype=labels.label.dtype).to(labels.label.device)
        y, v, m = labels(dist)
        theta = self.solver.filter_reg.item()
        return LearnedObjective(dist, y, v, m, theta, max(abs(theta), self.solver.min_filter_reg),
                                torch.exp(self.solver.log_step_length).item())

    def _solve(self, reference_feat: Tensor, query_feat: Tensor, num_iter: int | None, trace: bool):
        check_features(reference_feat, query_feat, self.feature_dim, self._same_size())
        num_iter = self.config.num_iter if num_iter is None else num_iter
        query_op = self.operator(query_feat)
        w = self.solver(self.initializer(reference_feat), self.operator(reference_feat), query_op,
                        num_iter, trace=trace)
        return w, query_op

    def filters(self, reference_feat: Tensor, query_feat: Tensor, num_iter: int | None = None,
                return_trace: bool = False) -> Tensor | tuple[Tensor, SolverTrace]:
        """Optimized filters (B, C, H, W); with ``return_trace``, ``(filters, SolverTrace)``."""
        return self._solve(reference_feat, query_feat, num_iter, return_trace)[0]

    def forward(self, reference_feat: Tensor, query_feat: Tensor, num_iter: int | None = None,
                return_trace: bool = False) -> Tensor | tuple[Tensor, SolverTrace]:
        w, query_op = self._solve(reference_feat, query_feat, num_iter, return_trace)
        if return_trace:
            return query_op.apply(w[0]), w[1]
        return query_op.apply(w)

    def _same_size(self) -> bool:
        return True


class GlobalGOCor(_GOCor):
    """Global GOCor: (B, C, H, W), (B, C, H', W') -> volume (B, H'·W', H, W).

    Query features may differ in size from the reference unless the query loss is on.
    """

    def __init__(self, feature_dim: int, config: GOCorConfig | None = None, **overrides):
        config = (config or GOCorConfig()).replace(**overrides)
        super().__init__(feature_dim, config, GLOBAL_INITIALIZERS)

    def operator(self, feat: Tensor) -> GlobalCorrelation:
        return GlobalCorrelation(feat)

    def _same_size(self) -> bool:
        return self.config.query_loss


class LocalGOCor(_GOCor):
    """Local GOCor: (B, C, H, W) twice -> volume (B, (2r+1)², H, W), scaled by 1/C.

    ``query_loss=True`` adds the supplement's local query loss: the prior R reads the window's
    (2r+1)² displacements as its query dims (computed through the volume)."""

    def __init__(self, feature_dim: int, config: GOCorConfig | None = None, **overrides):
        config = (config or LOCAL_DEFAULTS).replace(**overrides)
        super().__init__(feature_dim, config, LOCAL_INITIALIZERS)

    def operator(self, feat: Tensor) -> LocalCorrelation:
        return LocalCorrelation(feat, self.config.search_radius)
