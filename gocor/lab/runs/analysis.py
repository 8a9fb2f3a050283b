"""What the ablation runs learned, read back from their checkpoints (no retraining):

- :func:`steps_curve`: a matcher trained with 3 solver steps, evaluated with 0..7 (the paper's
  remark that changing the count at test time can hurt: TSS 83.4 at 3/3, 83.1 at 3/7);
- :func:`learned_objective`: the label y, weight v⁺ and mask m every GOCor module ended with,
  on a distance grid, with its step length and regularization;
- :func:`analyze`: both over every run of an ``ablate`` output, into ``steps.json`` and
  ``objectives.json`` beside the runs (skipped when present).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import Tensor

from ...module import gocor_modules
from ..data.pairs import PairConfig
from ..data.splits import held_out_split
from ..errors import UserError
from ..files import read_json, write_json
from ..models.matcher import Matcher
from .evaluate import evaluate, load_matcher
from .results import result_paths
from .variants import parse_run_name

STEPS = tuple(range(8))
STEPS_SPLITS = ("standard", "dynamic", "near_repetitive")
DISTANCES = tuple(round(0.1 * i, 1) for i in range(46))        # 0 .. 4.5, the bins' range


@contextlib.contextmanager
def solver_steps(model: torch.nn.Module, n: int):
    """Run every GOCor module of ``model`` with ``n`` solver steps inside the block."""
    modules = gocor_modules(model)
    saved = {name: m.config for name, m in modules.items()}
    try:
        for m in modules.values():
            m.config = m.config.replace(num_iter=n)
        yield model
    finally:
        for name, m in modules.items():
            m.config = saved[name]


def steps_curve(model: Matcher, splits: tuple[str, ...] = STEPS_SPLITS,
                steps: tuple[int, ...] = STEPS) -> dict[str, dict[str, list[float]]]:
    """{split: {metric: [value at each step count]}} of a trained matcher (AEPE, PCK-1/3/5, F1,
    coarse metrics)."""
    size = model.config.image_size
    out: dict[str, dict[str, list[float]]] = {}
    for split in splits:
        data = held_out_split(split, PairConfig(size=size, photometric=False))
        for n in steps:
            with torch.no_grad(), solver_steps(model, n):
                metrics = evaluate(model, data)
            for key, value in metrics.items():
                if isinstance(value, float):
                    out.setdefault(split, {}).setdefault(key, []).append(value)
    return out


def learned_objective(model: torch.nn.Module) -> dict[str, dict]:
    """{module name: {"y", "v_plus", "m": values on :data:`DISTANCES` (in cells of the module's
    grid), "step_length", "filter_reg"}} for every GOCor module of ``model`` (see
    :meth:`gocor.module.GlobalGOCor.learned_objective`). "filter_reg" is |θ_λ|; the solver uses
    λ = max(|θ_λ|, min_filter_reg)."""
    out = {}
    for name, m in gocor_modules(model).items():
        obj = m.learned_objective(torch.tensor(DISTANCES))
        out[name] = {"y": obj.y.tolist(), "v_plus": obj.v_plus.tolist(), "m": obj.m.tolist(),
                     "step_length": obj.step_length, "filter_reg": abs(obj.filter_reg)}
    return out


def post_contribution(model: Matcher, split: str = "large_motion", n: int = 32) -> dict[str, float]:
    """Does the capacity control (``corr_post``) do anything? For each of its post-processing
    modules, ‖V′ − V‖ / ‖V‖ over the volumes of ``n`` pairs of ``split`` (0: the readout never
    left zero, the matcher is plain correlation), and the readout's norm."""
    posts = {"global": model.global_post, **{f"local{i}": m for i, m in enumerate(model.local_post or ())}}
    posts = {k: m for k, m in posts.items() if m is not None}
    if not posts:
        raise UserError("post_contribution: the matcher has no post-processing (variant corr_post)")
    seen: dict[str, list[float]] = {k: [0.0, 0.0] for k in posts}

    def hook(name):
        def record(module, inputs, output):
            seen[name][0] += float((output - inputs[0]).square().sum())
            seen[name][1] += float(inputs[0].square().sum())
        return record

    handles = [m.register_forward_hook(hook(k)) for k, m in posts.items()]
    try:
        data = held_out_split(split, PairConfig(size=model.config.image_size, photometric=False), n)
        with torch.no_grad():
            evaluate(model, data)
    finally:
        for h in handles:
            h.remove()
    out = {f"{k}_relative_change": (d / v) ** 0.5 if v else 0.0 for k, (d, v) in seen.items()}
    out |= {f"{k}_readout_norm": float(m.readout.detach().norm()) for k, m in posts.items()}
    return out


@contextlib.contextmanager
def context_over(model: Matcher, weight: Tensor):
    """Inside the block, the global context-aware initializer's f̄ is the mean reference feature
    weighted by ``weight`` (B, 1, g, g) on the global grid instead of over all positions (an
    intervention: it cuts one path by which a region can change the filters elsewhere)."""
    init = getattr(model.global_gocor, "initializer", None)
    if init is None or not hasattr(init, "context"):
        raise UserError("context_over: the matcher's global level has no context-aware initializer")

    def weighted(ref: Tensor) -> Tensor:
        w = weight.to(ref)
        return (ref * w).sum((2, 3), keepdim=True) / w.sum((2, 3), keepdim=True).clamp_min(1e-6)

    init.context = weighted
    try:
        yield model
    finally:
        del init.context                # back to the class's method


def object_coupling(model: Matcher, n: int | None = None) -> dict[str, float]:
    """Is the image-mean feature of the context-aware initializer how a moving object degrades
    the background? Background AEPE on the ``dynamic`` split (the pixels of
    :func:`.evaluate.object_effect`): with the object, as trained; with the object but f̄ taken
    over the background's cells only; and on the same pairs without the object."""
    size = model.config.image_size
    cfg = PairConfig(size=size, photometric=False)
    with_obj = held_out_split("dynamic", cfg, n)
    without = held_out_split("dynamic_without_objects", cfg, n)
    background = with_obj["mask"] & ~with_obj["object"] & without["mask"]
    g = model.config.global_cells
    outside = 1 - torch.nn.functional.adaptive_avg_pool2d(with_obj["object"][:, None].float(), g)
    pairs = {**with_obj, "mask": background, "object": torch.zeros_like(background)}
    with torch.no_grad():
        trained = evaluate(model, pairs, batch_size=len(background))["aepe"]
        with context_over(model, outside):
            masked = evaluate(model, pairs, batch_size=len(background))["aepe"]
        clean = evaluate(model, {**without, "mask": background}, batch_size=len(background))["aepe"]
    return {"background_with_object": trained, "background_with_object_context_masked": masked,
            "background_without_object": clean}


def _cached(path: Path, names: list[str]) -> dict | None:
    """The JSON at ``path`` if it covers exactly the runs ``names``."""
    if path.exists():
        data = read_json(path)
        if sorted(data["runs"]) == sorted(names):
            return data
    return None


def analyze(out: str | Path, steps_variant: str = "gocor", device: str | None = None,
            steps: tuple[int, ...] = STEPS, splits: tuple[str, ...] = STEPS_SPLITS) -> dict:
    """Write ``steps.json`` (the steps curve of every seed of ``steps_variant``) and
    ``objectives.json`` (the learned objective of every run with a GOCor module) into an
    ``ablate`` output; each is recomputed only when the finished runs it covers changed."""
    out = Path(out)
    runs = [p.parent for p in result_paths(out) if p.name == "result.json"]
    if not runs:
        raise UserError(f"{out}: no finished ablation run (*-seed*/result.json)")
    models = {run.name: load_matcher(run / "last.pt", device)[0] for run in runs}
    result = {}
    stepped = [n for n in models if parse_run_name(n)[0] == steps_variant]
    if stepped:
        data = _cached(out / "steps.json", stepped)
        if data is None:
            data = {"variant": steps_variant, "trained_steps": models[stepped[0]].config.solver_steps,
                    "steps": list(steps), "runs": {n: steps_curve(models[n], splits, steps) for n in stepped}}
            write_json(out / "steps.json", data)
        result["steps"] = data
    with_gocor = [n for n, m in models.items() if gocor_modules(m)]
    data = _cached(out / "objectives.json", with_gocor)
    if data is None:
        data = {"distances": list(DISTANCES), "runs": {n: learned_objective(models[n]) for n in with_gocor}}
        write_json(out / "objectives.json", data)
    result["objectives"] = data
    return result
