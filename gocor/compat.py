"""Load the authors' GOCor weights (their parameter names and wrapper classes).

``from_official(config, state_dict)`` builds a :class:`GlobalGOCor` or :class:`LocalGOCor`
from the JSON config stored with each reference vector (``kind``, ``official_class``,
``official_args``, ``feature_dim``) and a state dict in the authors' key names.
``split_glunet_gocor(state_dict)`` pulls both GOCor modules out of a full GLU-Net-GOCor
checkpoint (prefixes ``corr.`` and ``local_corr.``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

from .module import LOCAL_DEFAULTS, GOCorConfig, GlobalGOCor, LocalGOCor

OFFICIAL_CLASSES = {
    "GlobalGOCorWithSimpleInitializer": ("global", "simple"),
    "GlobalGOCorWithFlexibleSimpleInitializer": ("global", "flexible_simple"),
    "GlobalGOCorWithContextAwareInitializer": ("global", "context"),
    "GlobalGOCorWithFlexibleContextAwareInitializer": ("global", "flexible_context"),
    "LocalCorrSimpleInitializer": ("local", "simple"),
}

# official argument -> GOCorConfig field
OFFICIAL_ARGS = {
    "optim_iter": "num_iter", "apply_query_loss": "query_loss", "reg_kernel_size": "prior_kernel_size",
    "reg_inter_dim": "prior_inter_dim", "reg_output_dim": "prior_output_dim",
    "num_dist_bins": "num_dist_bins", "bin_displacement": "bin_displacement",
    "init_gauss_sigma": "init_gauss_sigma", "v_minus_init_factor": "v_minus_init_factor",
    "init_step_length": "init_step_length", "init_filter_reg": "init_filter_reg",
    "min_filter_reg": "min_filter_reg", "search_size": "search_radius",
}
# The authors' defaults where they differ from ours.
OFFICIAL_DEFAULTS = {"query_loss": False, "prior_inter_dim": 1, "prior_output_dim": 1}

# our parameter name -> official name (without the global ``corr_module.`` prefix)
PARAM_NAMES = {
    "initializer.scaling": "filter_initializer.scaling",
    "initializer.target_fg": "filter_initializer.target_fg",
    "initializer.target_bg": "filter_initializer.target_bg",
    "solver.log_step_length": "filter_optimizer.log_step_length",
    "solver.filter_reg": "filter_optimizer.filter_reg",
    "solver.labels.label": "filter_optimizer.label_map_predictor.weight",
    "solver.labels.weight": "filter_optimizer.spatial_weight_predictor.weight",
    "solver.labels.mask": "filter_optimizer.target_mask_predictor.0.weight",
    "solver.prior.weight1": "filter_optimizer.reg_layer.weight1",
    "solver.prior.weight2": "filter_optimizer.reg_layer.weight2",
}


def _prefix(kind: str) -> str:
    return "corr_module." if kind == "global" else ""


def config_from_official(config: Mapping | str) -> tuple[str, int, GOCorConfig]:
    """(kind, feature_dim, GOCorConfig) from the authors' class name and argument dict."""
    if isinstance(config, str):
        config = json.loads(config)
    cls = config.get("official_class")
    if cls not in OFFICIAL_CLASSES:
        raise ValueError(f"unsupported official class {cls!r}; supported: {sorted(OFFICIAL_CLASSES)}")
    kind, initializer = OFFICIAL_CLASSES[cls]
    args = dict(config.get("official_args", {}))
    feature_dim = int(config.get("feature_dim", args.get("num_features", 0)))
    args.pop("num_features", None)
    if args.pop("v_minus_act", "sigmoid") != "sigmoid":
        raise ValueError("only v_minus_act='sigmoid' is supported")
    if args.pop("steplength_reg", 0.0) != 0.0:
        raise ValueError("only steplength_reg=0 is supported")
    unknown = sorted(set(args) - set(OFFICIAL_ARGS))
    if unknown:
        raise ValueError(f"unsupported official arguments: {unknown}")
    fields = {OFFICIAL_ARGS[k]: v for k, v in args.items()}
    base = GOCorConfig(**OFFICIAL_DEFAULTS) if kind == "global" else LOCAL_DEFAULTS
    return kind, feature_dim, base.replace(initializer=initializer, **fields)


def to_official_state_dict(module: GlobalGOCor | LocalGOCor) -> dict[str, Tensor]:
    """Our state dict in the authors' names and shapes (the inverse of loading)."""
    kind = "global" if isinstance(module, GlobalGOCor) else "local"
    out = {}
    for name, p in module.state_dict().items():
        official = _prefix(kind) + PARAM_NAMES[name]
        out[official] = p.view(1, -1, 1, 1) if name.startswith("solver.labels.") else p
    return out


def from_official(config: Mapping | str, state_dict: Mapping[str, Tensor],
                  **overrides) -> GlobalGOCor | LocalGOCor:
    """Build a GOCor module from the authors' config and state dict; ``overrides`` are
    GOCorConfig fields of ours that the authors' config has no word for (e.g. ``query_loss_form``).

    Its forward returns the volume in the authors' layout (see :mod:`gocor.correlation`).
    """
    kind, feature_dim, cfg = config_from_official(config)
    cfg = cfg.replace(**overrides)
    module = (GlobalGOCor if kind == "global" else LocalGOCor)(feature_dim, cfg)
    official_to_ours = {_prefix(kind) + off: ours for ours, off in PARAM_NAMES.items()}
    ours = module.state_dict()
    loaded = {}
    for key, value in state_dict.items():
        if key not in official_to_ours or official_to_ours[key] not in ours:
            raise KeyError(f"unexpected parameter {key!r} for {config_from_official.__name__} kind {kind}")
        name = official_to_ours[key]
        value = torch.as_tensor(value)
        if value.numel() != ours[name].numel():
            raise ValueError(f"{key}: {tuple(value.shape)} does not fit {tuple(ours[name].shape)}")
        loaded[name] = value.reshape(ours[name].shape)
    missing = sorted(set(ours) - set(loaded))
    if missing:
        raise KeyError(f"missing parameters: {[_prefix(kind) + PARAM_NAMES[m] for m in missing]}")
    dtype = next(iter(loaded.values())).dtype
    if dtype.is_floating_point:
        module.to(dtype)  # before loading, so float64 weights are not rounded through float32
    module.load_state_dict(loaded)
    return module


def split_glunet_gocor(state_dict: Mapping[str, Tensor]) -> tuple[dict, dict]:
    """(global, local) GOCor state dicts in official names from a GLU-Net-GOCor checkpoint."""
    glob = {k[len("corr."):]: v for k, v in state_dict.items() if k.startswith("corr.corr_module.")}
    loc = {k[len("local_corr."):]: v for k, v in state_dict.items() if k.startswith("local_corr.filter_")}
    if not glob and not loc:
        raise KeyError("no GOCor parameters under 'corr.' or 'local_corr.' in this state dict")
    return glob, loc


def load_reference(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """A vector recorded from the authors' implementation (``tests/data/*.npz``): its arrays as
    tensors on ``device``, ``config`` (the JSON that :func:`from_official` reads) and
    ``state_dict`` (their parameter names, from the ``param:`` entries)."""
    import numpy as np
    with np.load(path, allow_pickle=False) as d:
        out = {k: torch.from_numpy(d[k]).to(device) for k in d.files if k != "config"}
        out["config"] = json.loads(str(d["config"]))
    out["state_dict"] = {k[len("param:"):]: v for k, v in out.items() if k.startswith("param:")}
    return out
