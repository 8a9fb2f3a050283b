"""What the course notebooks' test cells compare with (course/source): the kit's answers, the
test problems and the oracles (autograd, the solver's own step). They live here, imported by
each test cell, not in the notebooks: a solution cell cannot redefine them, and the test cells
block them (``attempt(..., blocked=A2_BLOCKED)``) while the student's code runs.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checks import BLOCK_AUTOGRAD

_HERE = __name__
A1_BLOCKED = ("gocor.objective", "gocor.solver", _HERE)
"""a1: the objective's pieces are the exercise (the scores may use ``GlobalCorrelation``)."""
A2_BLOCKED = ("gocor.solver", _HERE) + BLOCK_AUTOGRAD
"""a2: the solver's objective and step, and autograd (the gradient is written by hand)."""
A3_BLOCKED = ("gocor.correlation", "gocor.objective", "gocor.solver", _HERE) + BLOCK_AUTOGRAD
"""a3: every operator and its transpose, and autograd (a vjp is a transpose)."""


# ---------------------------------------------------------------------------------------------
# a1: the objective
# ---------------------------------------------------------------------------------------------

def kit_labels(theta_y: Tensor, theta_plus: Tensor, theta_m: Tensor, bin_displacement: float):
    """The kit's ``LearnedLabels`` (float64) with the given K-vectors of weights."""
    from gocor.objective import LearnedLabels
    labels = LearnedLabels(theta_y.numel(), bin_displacement).double()
    with torch.no_grad():
        labels.label.copy_(theta_y)
        labels.weight.copy_(theta_plus)
        labels.mask.copy_(theta_m)
    return labels


def random_thetas(num_bins: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Three random K-vectors (θ_y, θ_+, θ_m)."""
    return tuple(torch.randn(num_bins, generator=generator, dtype=torch.float64) for _ in range(3))


def learned_labels(dist: Tensor, theta_y: Tensor, theta_plus: Tensor, theta_m: Tensor,
                   bin_displacement: float) -> tuple[Tensor, Tensor, Tensor]:
    """The reference answer of a1's ``learned_labels``: (y, v⁺, m), each shaped like ``dist``."""
    return kit_labels(theta_y, theta_plus, theta_m, bin_displacement)(dist)


def reference_loss(w: Tensor, ref_feat: Tensor, thetas: tuple[Tensor, Tensor, Tensor],
                   bin_displacement: float) -> Tensor:
    """The kit's L_r of global GOCor per image, (B,)."""
    from gocor.correlation import GlobalCorrelation
    from gocor.solver import FilterOptimizer
    opt = FilterOptimizer(kit_labels(*thetas, bin_displacement))
    return opt.objective(w, GlobalCorrelation(ref_feat))["L_r"]


def regularizer(w: Tensor, filter_reg: float, min_filter_reg: float, local: bool) -> Tensor:
    """The kit's ½λ²‖w‖² per image, (B,), for global or local (radius 2) GOCor."""
    from gocor.correlation import GlobalCorrelation, LocalCorrelation
    from gocor.objective import LearnedLabels
    from gocor.solver import FilterOptimizer
    opt = FilterOptimizer(LearnedLabels().double(), init_filter_reg=filter_reg,
                          min_filter_reg=min_filter_reg).double()
    return opt.objective(w, LocalCorrelation(w, 2) if local else GlobalCorrelation(w))["reg"]


# ---------------------------------------------------------------------------------------------
# a2: one solver step
# ---------------------------------------------------------------------------------------------

def pair_distances(h: int, w: int) -> Tensor:
    """|p − q| for all partners q (rows, row-major) and filters p (H, W): (H·W, H, W)."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    return torch.sqrt((yy.reshape(-1, 1, 1) - yy) ** 2 + (xx.reshape(-1, 1, 1) - xx) ** 2)


def make_problem(seed: int, b: int, c: int, h: int, w: int, prior: bool = False):
    """(solver with its parameters moved away from their initial values, reference features,
    query features, filters), float64, each map (B, C, H, W)."""
    from gocor.objective import LearnedLabels, QueryPrior
    from gocor.solver import FilterOptimizer
    torch.manual_seed(seed)
    opt = FilterOptimizer(LearnedLabels(), QueryPrior(3, 4, 4) if prior else None).double()
    with torch.no_grad():
        for p in opt.parameters():
            p.add_(0.2 * torch.randn_like(p))
    maps = [torch.randn(b, c, h, w, dtype=torch.float64) for _ in range(3)]
    return opt, maps[0], maps[1], 0.3 * maps[2]


def autograd_gradient(opt, w: Tensor, ref_feat: Tensor, query_feat: Tensor | None = None,
                      term: str = "loss") -> Tensor:
    """∂ objective[term] / ∂w by autograd (summed over the batch), (B, C, H, W)."""
    from gocor.correlation import GlobalCorrelation
    w = w.detach().requires_grad_(True)
    qop = GlobalCorrelation(query_feat) if query_feat is not None else None
    value = opt.objective(w, GlobalCorrelation(ref_feat), qop)[term].sum()
    return torch.autograd.grad(value, w)[0]


def solver_alpha(opt, w: Tensor, g: Tensor, ref_feat: Tensor, query_feat: Tensor | None = None,
                 per: str = "filter") -> Tensor:
    """α of the kit's solver, read off one step w1 = w − exp(γ) α g: (B, 1, H, W) per filter,
    (B, 1, 1, 1) per image."""
    from gocor.correlation import GlobalCorrelation
    qop = GlobalCorrelation(query_feat) if query_feat is not None else None
    with torch.no_grad():
        w1 = opt(w, GlobalCorrelation(ref_feat), qop, num_iter=1)
        dims = (1,) if per == "filter" else (1, 2, 3)
        return ((w - w1) * g).sum(dims, keepdim=True) / (g * g).sum(dims, keepdim=True) / opt.log_step_length.exp()


def model_along(opt, w: Tensor, g: Tensor, ref_feat: Tensor, alphas: Tensor) -> Tensor:
    """The Gauss-Newton model per filter at w − α g for each α: (len(alphas), B, H, W)."""
    from gocor.correlation import GlobalCorrelation
    from gocor.objective import robust_activation
    op = GlobalCorrelation(ref_feat)
    y, v, m = opt.labels(pair_distances(*w.shape[-2:]))
    s = op.apply(w)
    d = v * (0.5 * (1 - m) * torch.sign(s) + 0.5 * (1 + m))
    r, h = v * robust_activation(s, m) - v * y, d * op.apply(g)
    lam2 = (opt.filter_reg ** 2).clamp(min=opt.min_filter_reg ** 2)
    a = alphas.view(-1, 1, 1, 1, 1)
    return 0.5 * ((r - a * h) ** 2).sum(2) + 0.5 * lam2 * ((w - a * g) ** 2).sum(2)


def step_hint(got: Any, expected: Tensor) -> str:
    """Which way a step length is off, and what that usually means."""
    if type(got) is not Tensor or got.shape != expected.shape:
        return ""
    ratio = float((got.detach() / expected).median())
    if ratio > 1 + 1e-6:
        return (f"your α is larger than the exact step (median ratio {ratio:.3g}): the denominator "
                f"misses curvature, e.g. the regularizer's λ²‖g_p‖² or part of Σ_q h².")
    if ratio < 1 - 1e-6:
        return (f"your α is smaller than the exact step (median ratio {ratio:.3g}): the denominator "
                f"has too much curvature (a term counted twice?) or the numerator too little.")
    return "α is ‖g‖² over the curvature of the model along g, per filter: sum over channels (dim 1)."


# ---------------------------------------------------------------------------------------------
# a4: the mini ablation
# ---------------------------------------------------------------------------------------------

def asked_train_config(model: str, seed: int, steps: int, batch_size: int, val_pairs: int) -> dict:
    """The training config a4 asks for, as the checkpoint stores it (``ckpt_every`` aside: the
    kit always writes a checkpoint at the end of training)."""
    from gocor.lab.runs.train import PROFILES
    cfg = replace(PROFILES["tiny"], variant=model, seed=seed, steps=steps, batch_size=batch_size,
                  val_pairs=val_pairs, val_every=steps, ckpt_every=steps)
    return asdict(cfg)


def config_differences(got: dict, expected: dict) -> list[str]:
    """``field = got (expected ...)`` for each field of a training config that differs."""
    out = []
    for key in sorted(set(got) | set(expected)):
        if key == "ckpt_every":
            continue
        if got.get(key, "<missing>") != expected.get(key, "<missing>"):
            out.append(f"`{key}` = {got.get(key, '<missing>')!r} (expected {expected.get(key, '<missing>')!r})")
    return out


def probe_checkpoint(out_dir: str | Path, model: str = "corr", seed: int = 0) -> Path:
    """A one-step training run of the ``tiny`` profile into ``out_dir``: a real checkpoint to
    test a4's ``test_aepe`` on (a second of CPU). Returns the checkpoint's path."""
    from gocor.lab.runs.train import PROFILES, train
    cfg = replace(PROFILES["tiny"], variant=model, seed=seed, steps=1, batch_size=1, val_pairs=1, val_every=1)
    return Path(train(cfg, out_dir, device="cpu", progress=False)["checkpoint"])


def test_aepe(path: str | Path, split: str, pairs: int) -> float:
    """The reference answer of a4's ``test_aepe``: AEPE (px) of the checkpoint on the first
    ``pairs`` pairs of the held-out ``split``."""
    from gocor.lab.runs.evaluate import load_matcher
    from gocor.lab.data.splits import held_out_split
    from gocor.lab.runs.evaluate import evaluate
    model, _ = load_matcher(path, "cpu")
    return float(evaluate(model, held_out_split(split, n=pairs))["aepe"])


test_aepe.__test__ = False   # not a pytest test
