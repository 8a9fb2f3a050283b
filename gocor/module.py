"""GOCor modules: drop-in replacements for the global and local correlation layers.

    w⁰ = initializer(f^r);  w = FilterOptimizer(w⁰) over the operator pair;  volume = C(w, f^q)

Global and local GOCor share every part but the correlation operator.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields, replace

import torch
import torch.nn as nn
from torch import Tensor

from .correlation import GlobalCorrelation, LocalCorrelation
from .initializers import GLOBAL_INITIALIZERS, LOCAL_INITIALIZERS
from .objective import LearnedLabels, QueryPrior
from .solver import FilterOptimizer, SolverTrace, autocast_enabled


KINDS = ("global", "local")
WEIGHT1_DIMS = ("query", "reference")


@dataclass(frozen=True)
class GOCorConfig:
    """Hyper-parameters; the defaults are the paper's (GLU-Net-GOCor). ``initializer`` and
    ``query_loss`` left at None take the kind's default (:meth:`for_kind`). Every field is
    checked on construction; a bad value raises naming the field."""

    num_iter: int = 3                   # solver steps (>= 0); forward(num_iter=...) overrides per call
    initializer: str | None = None      # None: "flexible_context" (global), "simple" (local)
    query_loss: bool | None = None      # L_q with the 4D prior; None: on for global (the paper's), off for local
    query_loss_form: str = "auto"       # global L_q via "gram" (Q, grows as (k²C)²), "volume", or "auto" (cheaper)
    prior_kernel_size: int = 3          # the prior R's kernel, odd
    prior_inter_dim: int = 16           # R's channels after weight1 (>= 1)
    prior_output_dim: int = 16          # R's output channels (>= 1)
    prior_weight1_dims: str = "query"   # the dims weight1 convolves: "query" (global; the kit's local) or
                                        # "reference" (the authors' local code, see gocor.compat)
    search_radius: int = 4              # local only: a (2r+1)² window (>= 0)
    num_dist_bins: int = 10             # bins of the learned y, v+, m over distance (>= 1)
    bin_displacement: float = 0.5       # bin width in cells (> 0)
    init_gauss_sigma: float = 1.0       # initial label width (>= 0; 0: 1 at δ = 0 only, as the authors)
    v_minus_init_factor: float = 4.0    # initial mask logits: factor · tanh(2 − δ)
    init_step_length: float = 1.0       # initial step factor exp(γ) (> 0)
    init_filter_reg: float = 1e-2       # initial θ_λ (λ = max(|θ_λ|, min_filter_reg))
    min_filter_reg: float = 1e-5        # floor of λ (>= 0)

    def __post_init__(self) -> None:
        _integer("num_iter", self.num_iter, 0)
        if self.initializer is not None and not isinstance(self.initializer, str):
            raise TypeError(f"GOCorConfig.initializer must be a name (str) or None, got {self.initializer!r}")
        if self.query_loss is not None and not isinstance(self.query_loss, bool):
            raise TypeError(f"GOCorConfig.query_loss must be True, False or None, got {self.query_loss!r}")
        _integer("prior_kernel_size", self.prior_kernel_size, 1)
        if self.prior_kernel_size % 2 != 1:
            raise ValueError(f"GOCorConfig.prior_kernel_size must be odd, got {self.prior_kernel_size}")
        _integer("prior_inter_dim", self.prior_inter_dim, 1)
        _integer("prior_output_dim", self.prior_output_dim, 1)
        if self.prior_weight1_dims not in WEIGHT1_DIMS:
            raise ValueError(f"GOCorConfig.prior_weight1_dims must be one of {WEIGHT1_DIMS}, "
                             f"got {self.prior_weight1_dims!r}")
        _integer("search_radius", self.search_radius, 0)
        _integer("num_dist_bins", self.num_dist_bins, 1)
        _real("bin_displacement", self.bin_displacement, positive=True)
        _real("init_gauss_sigma", self.init_gauss_sigma, nonnegative=True)
        _real("v_minus_init_factor", self.v_minus_init_factor)
        _real("init_step_length", self.init_step_length, positive=True)
        _real("init_filter_reg", self.init_filter_reg)
        _real("min_filter_reg", self.min_filter_reg, nonnegative=True)

    def replace(self, **changes) -> "GOCorConfig":
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"unknown GOCorConfig field(s) {unknown}; fields: {[f.name for f in fields(self)]}")
        return replace(self, **changes)

    def for_kind(self, kind: str) -> "GOCorConfig":
        """This config with the kind's defaults filled in: global flexible_context with L_q
        (GLU-Net-GOCor), local simple without (PWC-Net-GOCor, GLU-Net-GOCor's local level)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        initializer, query_loss = ("flexible_context", True) if kind == "global" else ("simple", False)
        return self.replace(initializer=initializer if self.initializer is None else self.initializer,
                            query_loss=query_loss if self.query_loss is None else self.query_loss)


def _integer(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"GOCorConfig.{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"GOCorConfig.{name} must be >= {minimum}, got {value}")


def _real(name: str, value, positive: bool = False, nonnegative: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"GOCorConfig.{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"GOCorConfig.{name} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"GOCorConfig.{name} must be >= 0, got {value}")


LOCAL_DEFAULTS = GOCorConfig().for_kind("local")


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


def check_features(ref: Tensor, query: Tensor, feature_dim: int | None, same_size: bool,
                   mixed_dtypes: bool = False, names: tuple[str, str] = ("reference_feat", "query_feat")) -> None:
    """Raise TypeError/ValueError naming the problem instead of returning a wrong volume.
    ``feature_dim`` None accepts any channel count (the same in both); ``mixed_dtypes`` accepts
    two floating dtypes (under autocast, where a warped query may come back in float32); ``names``:
    the two arguments' names in the messages."""
    rn, qn = names
    for name, t in ((rn, ref), (qn, query)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D (B, C, H, W), got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if feature_dim is not None and t.shape[1] != feature_dim:
            raise ValueError(f"{name} has {t.shape[1]} channels, the module expects {feature_dim}")
        if t.shape[-2] < 1 or t.shape[-1] < 1 or t.shape[0] < 1 or t.shape[1] < 1:
            raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    if ref.dtype != query.dtype and not mixed_dtypes:
        raise TypeError(f"dtype mismatch: {rn} {ref.dtype}, {qn} {query.dtype}")
    if ref.device != query.device:
        raise ValueError(f"device mismatch: {rn} on {ref.device}, {qn} on {query.device}")
    if ref.shape[0] != query.shape[0]:
        raise ValueError(f"batch mismatch: {rn} {ref.shape[0]}, {qn} {query.shape[0]}")
    if ref.shape[1] != query.shape[1]:
        raise ValueError(f"channel mismatch: {rn} {ref.shape[1]}, {qn} {query.shape[1]}")
    if same_size and ref.shape[-2:] != query.shape[-2:]:
        raise ValueError(f"{rn} {tuple(ref.shape[-2:])} and {qn} "
                         f"{tuple(query.shape[-2:])} must have the same spatial size here")


def check_finite(**tensors: Tensor) -> None:
    """Raise ValueError naming the first tensor holding NaN or Inf, with a count and the index
    of its first bad entry (one pass over each tensor and a device sync)."""
    for name, t in tensors.items():
        bad = ~torch.isfinite(t)
        if bad.any():
            first = tuple(int(i) for i in bad.nonzero()[0])
            raise ValueError(f"{name} holds {int(bad.sum())} NaN/Inf value(s) of {t.numel()}, the first at "
                             f"index {first} (B, C, H, W); one such pixel spoils its whole batch item's volume")


class _GOCor(nn.Module):
    """What global and local GOCor share; see :class:`GlobalGOCor` and :class:`LocalGOCor`."""

    kind = ""

    def __init__(self, feature_dim: int | None, config: GOCorConfig | None, overrides: dict,
                 initializers: dict, check_finite: bool = False):
        super().__init__()
        config = (config if config is not None else GOCorConfig()).replace(**overrides).for_kind(self.kind)
        if config.initializer not in initializers:
            raise ValueError(f"unknown {self.kind} initializer {config.initializer!r}; "
                             f"choose from {sorted(initializers)}")
        if feature_dim is None:
            if config.initializer.startswith("flexible"):
                raise ValueError(f"feature_dim=None (any channel count) needs an initializer without "
                                 f"per-channel parameters; {config.initializer!r} has them: pass feature_dim")
        elif isinstance(feature_dim, bool) or not isinstance(feature_dim, numbers.Integral) or feature_dim < 1:
            raise ValueError(f"feature_dim must be a positive integer (or None: any), got {feature_dim!r}")
        self.feature_dim = feature_dim
        self.config = config
        self.check_finite = bool(check_finite)
        self.initializer = initializers[config.initializer](feature_dim or 1)
        labels = LearnedLabels(config.num_dist_bins, config.bin_displacement,
                               config.init_gauss_sigma, config.v_minus_init_factor)
        prior = (QueryPrior(config.prior_kernel_size, config.prior_inter_dim, config.prior_output_dim,
                            config.prior_weight1_dims) if config.query_loss else None)
        self.solver = FilterOptimizer(labels, prior, config.init_step_length,
                                      config.init_filter_reg, config.min_filter_reg,
                                      config.query_loss_form)

    def extra_repr(self) -> str:
        c = self.config
        out = (f"feature_dim={self.feature_dim}, num_iter={c.num_iter}, initializer={c.initializer!r}, "
               f"query_loss={c.query_loss}")
        if c.query_loss:
            out += f" (prior k={c.prior_kernel_size}, {c.prior_inter_dim}->{c.prior_output_dim})"
        if self.kind == "local":
            out += f", search_radius={c.search_radius}"
        if self.check_finite:
            out += ", check_finite=True"
        return out

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
        """The objective as learned: y, v+, m at ``distances`` (N,) in cells (default: 0 to the
        last bin's start in fifths of a bin), the effective λ and step length."""
        labels = self.solver.labels
        if distances is None:
            distances = torch.arange(5 * (labels.num_bins - 1) + 1) * (labels.bin_displacement / 5)
        dist = torch.as_tensor(distances, dtype=labels.label.dtype).to(labels.label.device)
        y, v, m = labels(dist)
        theta = self.solver.filter_reg.item()
        return LearnedObjective(dist, y, v, m, theta, max(abs(theta), self.solver.min_filter_reg),
                                torch.exp(self.solver.log_step_length).item())

    def _run(self, reference_feat: Tensor, query_feat: Tensor, num_iter: int | None, trace: bool,
             volume: bool):
        """(filters or volume, trace or None). Under autocast, or with float16 / bfloat16 inputs,
        the solve runs in float32 (its losses overflow float16 and its α needs the precision); the
        result comes back in the callers' dtype (the wider of the two inputs')."""
        device = reference_feat.device.type if isinstance(reference_feat, Tensor) else "cpu"
        autocast = autocast_enabled(device)
        check_features(reference_feat, query_feat, self.feature_dim, self._same_size(), mixed_dtypes=autocast)
        if self.check_finite:
            check_finite(reference_feat=reference_feat, query_feat=query_feat)
        num_iter = self.config.num_iter if num_iter is None else num_iter
        if isinstance(num_iter, bool) or not isinstance(num_iter, numbers.Integral) or num_iter < 0:
            raise ValueError(f"num_iter must be an integer >= 0, got {num_iter!r}")
        low = (torch.float16, torch.bfloat16)
        if not autocast and reference_feat.dtype not in low and query_feat.dtype not in low:
            return self._compute(reference_feat, query_feat, num_iter, trace, volume)
        half_params = sorted({str(p.dtype) for p in self.parameters() if p.dtype in low})
        if half_params:
            raise TypeError(f"{type(self).__name__}'s parameters are {', '.join(half_params)}: keep the module in "
                            f"float32 (its solve runs in float32: its losses overflow float16) and use "
                            f"torch.autocast for mixed precision")
        out_dtype = torch.promote_types(reference_feat.dtype, query_feat.dtype)
        dtype = torch.promote_types(out_dtype, torch.float32)
        with torch.autocast(device, enabled=False):
            out, tr = self._compute(reference_feat.to(dtype), query_feat.to(dtype), num_iter, trace, volume)
        return out.to(out_dtype), tr

    def _compute(self, ref: Tensor, query: Tensor, num_iter: int, trace: bool, volume: bool):
        query_op = self.operator(query)
        w = self.solver(self.initializer(ref), self.operator(ref), query_op, num_iter, trace=trace)
        w, tr = w if trace else (w, None)
        return (query_op.apply(w) if volume else w), tr

    def filters(self, reference_feat: Tensor, query_feat: Tensor, num_iter: int | None = None,
                return_trace: bool = False) -> Tensor | tuple[Tensor, SolverTrace]:
        """Optimized filters (B, C, H, W), one per reference position; with ``return_trace``,
        ``(filters, SolverTrace)``. Arguments as in :meth:`forward`."""
        w, tr = self._run(reference_feat, query_feat, num_iter, return_trace, volume=False)
        return (w, tr) if return_trace else w

    def _same_size(self) -> bool:
        return True


class GlobalGOCor(_GOCor):
    """Global GOCor, a drop-in for the global correlation layer (GLU-Net's coarsest level).

    ``forward(reference_feat (B, C, H, W), query_feat (B, C, H', W'))`` -> volume (B, H'·W', H, W):
    channel q = y'·W' + x' holds the score of the optimized filter at every reference position
    (H, W) against query position (y', x'), as ``global_correlation(reference, query)``.

    Args:
        feature_dim: C, or None for any C (only with an initializer without per-channel weights).
        config: :class:`GOCorConfig`; keyword ``overrides`` replace its fields
            (e.g. ``GlobalGOCor(512, num_iter=3, query_loss=False)``).
        layout: "glunet" (above) or "raft": the same volume as a view (B, H, W, 1, H', W')
            (reference position first, as RAFT's ``CorrBlock.corr``), no copy; RAFT divides its
            correlation by √C, GOCor's scores are not rescaled.
        return_losses: forward returns ``(volume, trace)`` like the authors' GlobalGOCor returns
            ``(volume, losses)``; trace is None unless ``return_trace=True``.
        check_finite: raise a ValueError naming the feature tensor that holds NaN/Inf (costs a pass
            over the features and a device sync per call).

    Query features may differ in size from the reference unless the query loss is on. Under
    autocast the solve runs in float32. Differentiable once (its backward is written out);
    second derivatives raise.
    """

    kind = "global"
    LAYOUTS = ("glunet", "raft")

    def __init__(self, feature_dim: int | None, config: GOCorConfig | None = None, *, layout: str = "glunet",
                 return_losses: bool = False, check_finite: bool = False, **overrides):
        if layout not in self.LAYOUTS:
            raise ValueError(f"layout must be one of {self.LAYOUTS}, got {layout!r}")
        super().__init__(feature_dim, config, overrides, GLOBAL_INITIALIZERS, check_finite)
        self.layout = layout
        self.return_losses = bool(return_losses)

    def operator(self, feat: Tensor) -> GlobalCorrelation:
        return GlobalCorrelation(feat)

    def forward(self, reference_feat: Tensor, query_feat: Tensor, num_iter: int | None = None,
                return_trace: bool = False) -> Tensor | tuple[Tensor, SolverTrace | None]:
        """reference_feat (B, C, H, W), query_feat (B, C, H', W') -> volume (B, H'·W', H, W)
        (layout "raft": (B, H, W, 1, H', W')).

        ``num_iter`` (>= 0) overrides the config's step count for this call (0: the initial
        filters' volume). With ``return_trace``, returns ``(volume, SolverTrace)``: the
        objective per step and image, and α, detached (costs one more residual pass).
        """
        volume, tr = self._run(reference_feat, query_feat, num_iter, return_trace, volume=True)
        if self.layout == "raft":
            b, (h, w), (hq, wq) = volume.shape[0], reference_feat.shape[-2:], query_feat.shape[-2:]
            volume = volume.view(b, hq, wq, h, w).permute(0, 3, 4, 1, 2).unsqueeze(3)
        return (volume, tr) if (return_trace or self.return_losses) else volume

    def extra_repr(self) -> str:
        out = super().extra_repr()
        if self.layout != "glunet":
            out += f", layout={self.layout!r}"
        return out + (", return_losses=True" if self.return_losses else "")

    def _same_size(self) -> bool:
        return self.config.query_loss


class LocalGOCor(_GOCor):
    """Local GOCor, a drop-in for the local correlation layer (PWC-Net, GLU-Net's finer levels).

    ``forward(reference_feat (B, C, H, W), query_feat (B, C, H, W))`` -> volume (B, (2r+1)², H, W),
    scaled by 1/C: channel d = (dy+r)(2r+1) + (dx+r) is displacement (dy, dx), zero outside the
    image, as ``local_correlation(reference, query, r)``.

    Args:
        feature_dim: C, or None for any C (so one module can serve levels of 512 and 256
            channels, as GLU-Net-GOCor's shared local module does; not with a flexible initializer).
        config: :class:`GOCorConfig` (local defaults: initializer "simple", no query loss);
            keyword ``overrides`` replace its fields (e.g. ``LocalGOCor(64, search_radius=3)``).
        check_finite: raise a ValueError naming the feature tensor that holds NaN/Inf.

    ``query_loss=True`` adds the supplement's local query loss: the prior R reads the window's
    (2r+1)² displacements as its query dims (computed through the volume). Under autocast the
    solve runs in float32. Differentiable once; second derivatives raise.
    """

    kind = "local"

    def __init__(self, feature_dim: int | None, config: GOCorConfig | None = None, *,
                 check_finite: bool = False, **overrides):
        super().__init__(feature_dim, config, overrides, LOCAL_INITIALIZERS, check_finite)

    def operator(self, feat: Tensor) -> LocalCorrelation:
        return LocalCorrelation(feat, self.config.search_radius)

    def forward(self, reference_feat: Tensor, query_feat: Tensor, num_iter: int | None = None,
                return_trace: bool = False) -> Tensor | tuple[Tensor, SolverTrace]:
        """reference_feat, query_feat (B, C, H, W) -> volume (B, (2r+1)², H, W).

        ``num_iter`` (>= 0) overrides the config's step count for this call. With
        ``return_trace``, returns ``(volume, SolverTrace)`` (see :class:`gocor.solver.SolverTrace`).
        """
        volume, tr = self._run(reference_feat, query_feat, num_iter, return_trace, volume=True)
        return (volume, tr) if return_trace else volume
