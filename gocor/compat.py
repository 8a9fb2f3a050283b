"""Load the authors' GOCor weights (their parameter names and wrapper classes).

``from_official(config, state_dict)`` builds a :class:`GlobalGOCor` or :class:`LocalGOCor`
from the JSON config stored with each reference vector (``kind``, ``official_class``,
``official_args``, ``feature_dim``) and a state dict in the authors' key names.
``split_glunet_gocor(checkpoint)`` pulls both GOCor modules out of a full GLU-Net-GOCor
checkpoint (prefixes ``corr.`` and ``local_corr.``), ``split_pwcnet_gocor(checkpoint)`` the five
local modules of a PWC-Net-GOCor one (``local_corr_6.`` … ``local_corr_2.``); both take what
``torch.load`` returns (a state dict, or a dict holding one under ``state_dict``).

Semantics of the authors' arguments that differ from the names: ``search_size`` is the window
width (2r+1; their code asserts 9), ``init_gauss_sigma_DIMP`` is ``init_gauss_sigma``; in their
local query loss ``reg_layer.weight1`` convolves over the reference (H, W) dims and ``weight2`` over
the displacements (``GOCorConfig.prior_weight1_dims="reference"``). Their default ``num_features``
is 512; local modules are built for any channel count (``feature_dim=None``), as theirs work.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

from .module import GOCorConfig, GlobalGOCor, LocalGOCor

OFFICIAL_CLASSES = {
    "GlobalGOCorWithSimpleInitializer": ("global", "simple"),
    "GlobalGOCorWithFlexibleSimpleInitializer": ("global", "flexible_simple"),
    "GlobalGOCorWithContextAwareInitializer": ("global", "context"),
    "GlobalGOCorWithFlexibleContextAwareInitializer": ("global", "flexible_context"),
    "LocalCorrSimpleInitializer": ("local", "simple"),
    "LocalCorrInitializerZeros": ("local", "zeros"),
}
OFFICIAL_FEATURE_DIM = 512             # their num_features default

# official argument -> GOCorConfig field
OFFICIAL_ARGS = {
    "optim_iter": "num_iter", "apply_query_loss": "query_loss", "reg_kernel_size": "prior_kernel_size",
    "reg_inter_dim": "prior_inter_dim", "reg_output_dim": "prior_output_dim",
    "num_dist_bins": "num_dist_bins", "bin_displacement": "bin_displacement",
    "init_gauss_sigma": "init_gauss_sigma", "init_gauss_sigma_DIMP": "init_gauss_sigma",
    "v_minus_init_factor": "v_minus_init_factor",
    "init_step_length": "init_step_length", "init_filter_reg": "init_filter_reg",
    "min_filter_reg": "min_filter_reg",
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
    """(kind, feature_dim, GOCorConfig) from the authors' class name and argument dict.
    feature_dim is the config's ``feature_dim`` or ``official_args["num_features"]``, else their
    default 512."""
    if isinstance(config, str):
        config = json.loads(config)
    cls = config.get("official_class")
    if cls not in OFFICIAL_CLASSES:
        raise ValueError(f"unsupported official class {cls!r}; supported: {sorted(OFFICIAL_CLASSES)}")
    kind, initializer = OFFICIAL_CLASSES[cls]
    if config.get("kind", kind) != kind:
        raise ValueError(f"config kind {config['kind']!r} contradicts official_class {cls!r} ({kind}); "
                         f"drop 'kind' or correct it")
    args = dict(config.get("official_args", {}))
    feature_dim = int(config.get("feature_dim", args.get("num_features", OFFICIAL_FEATURE_DIM)))
    args.pop("num_features", None)
    if args.pop("v_minus_act", "sigmoid") != "sigmoid":
        raise ValueError("only v_minus_act='sigmoid' is supported")
    if args.pop("steplength_reg", 0.0) != 0.0:
        raise ValueError("only steplength_reg=0 is supported")
    if not args.pop("train_label_map", True):
        raise ValueError("only train_label_map=True is supported (freeze_objective() freezes all of it)")
    search_size = args.pop("search_size", None)
    unknown = sorted(set(args) - set(OFFICIAL_ARGS))
    if unknown:
        raise ValueError(f"unsupported official arguments: {unknown}")
    if "init_gauss_sigma" in args and "init_gauss_sigma_DIMP" in args:
        raise ValueError("give init_gauss_sigma or init_gauss_sigma_DIMP, not both")
    fields = {OFFICIAL_ARGS[k]: v for k, v in args.items()}
    if search_size is not None:
        if kind != "local":
            raise ValueError("search_size applies to the local module only")
        if isinstance(search_size, bool) or not isinstance(search_size, int) or search_size < 1 or search_size % 2 != 1:
            raise ValueError(f"search_size is the window width 2r+1 (the authors use 9), got {search_size!r}")
        fields["search_radius"] = (search_size - 1) // 2
    if kind == "local":
        fields["prior_weight1_dims"] = "reference"      # their local reg_layer: weight1 over (H, W)
    return kind, feature_dim, GOCorConfig(**OFFICIAL_DEFAULTS).replace(initializer=initializer, **fields)


def official_state_dict(checkpoint: Mapping) -> Mapping[str, Tensor]:
    """The state dict in what ``torch.load`` returned: ``checkpoint["state_dict"]`` when present
    (the authors' checkpoints), else the dict itself (as their own loader tries)."""
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"expected the dict torch.load returns, got {type(checkpoint).__name__}")
    inner = checkpoint.get("state_dict")
    return inner if isinstance(inner, Mapping) else checkpoint


def to_official_state_dict(module: GlobalGOCor | LocalGOCor) -> dict[str, Tensor]:
    """Our state dict in the authors' names and shapes (the inverse of loading)."""
    kind = "global" if isinstance(module, GlobalGOCor) else "local"
    out = {}
    for name, p in module.state_dict().items():
        official = _prefix(kind) + PARAM_NAMES[name]
        out[official] = p.view(1, -1, 1, 1) if name.startswith("solver.labels.") else p
    return out


def from_official(config: Mapping | str, state_dict: Mapping[str, Tensor],
                  return_losses: bool = False, **overrides) -> GlobalGOCor | LocalGOCor:
    """Build a GOCor module from the authors' config and state dict (or the whole ``torch.load``
    dict holding it under ``state_dict``); ``overrides`` are GOCorConfig fields of ours that the
    authors' config has no word for (e.g. ``query_loss_form``).

    Its forward returns the volume in the authors' layout (see :mod:`gocor.correlation`); with
    ``return_losses`` a global module returns ``(volume, trace)`` as theirs returns
    ``(volume, losses)``. Local modules accept any channel count (``feature_dim=None``).
    """
    kind, feature_dim, cfg = config_from_official(config)
    cfg = cfg.replace(**overrides)
    state_dict = official_state_dict(state_dict)
    if kind == "global":
        module = GlobalGOCor(feature_dim, cfg, return_losses=return_losses)
    else:
        if return_losses:
            raise ValueError("return_losses: the authors' LocalGOCor returns the volume only")
        module = LocalGOCor(None if not cfg.initializer.startswith("flexible") else feature_dim, cfg)
    official_to_ours = {_prefix(kind) + off: ours for ours, off in PARAM_NAMES.items()}
    ours = module.state_dict()
    loaded = {}
    for key, value in state_dict.items():
        if key not in official_to_ours or official_to_ours[key] not in ours:
            raise KeyError(f"unexpected parameter {key!r} for {config_from_official.__name__} kind {kind}")
        name = official_to_ours[key]
        value = torch.as_tensor(value)
        if value.numel() != ours[name].numel():
            hint = ""
            if name.startswith("initializer.") and ours[name].numel() == feature_dim:
                hint = (f"; it is per channel: the checkpoint has {value.numel()} channels, feature_dim is "
                        f"{feature_dim} (the config's feature_dim / num_features, else the authors' default "
                        f"{OFFICIAL_FEATURE_DIM}): set feature_dim={value.numel()} in the config")
            raise ValueError(f"{key}: {tuple(value.shape)} does not fit {tuple(ours[name].shape)}{hint}")
        loaded[name] = value.reshape(ours[name].shape)
    missing = sorted(set(ours) - set(loaded))
    if missing:
        raise KeyError(f"missing parameters: {[_prefix(kind) + PARAM_NAMES[m] for m in missing]}")
    dtype = next(iter(loaded.values())).dtype
    if dtype.is_floating_point and torch.finfo(dtype).bits > 32:
        module.to(dtype)  # before loading, so float64 weights are not rounded through float32
    # float16 / bfloat16 weights (a checkpoint saved in half precision) load into the float32
    # module exactly: a half-precision module is refused by forward (its losses overflow float16)
    module.load_state_dict(loaded)
    return module


def split_glunet_gocor(checkpoint: Mapping) -> tuple[dict, dict]:
    """(global, local) GOCor state dicts in official names from a GLU-Net-GOCor checkpoint (its
    state dict, or the ``torch.load`` dict holding it). GLU-Net-GOCor shares one local module
    between its levels of 512 and 256 channels: :func:`from_official` builds it for any C."""
    state_dict = official_state_dict(checkpoint)
    glob = {k[len("corr."):]: v for k, v in state_dict.items() if k.startswith("corr.corr_module.")}
    loc = {k[len("local_corr."):]: v for k, v in state_dict.items() if k.startswith("local_corr.filter_")}
    if not glob and not loc:
        raise KeyError("no GOCor parameters under 'corr.' or 'local_corr.' in this state dict")
    return glob, loc


PWCNET_LEVELS = (6, 5, 4, 3, 2)


def split_pwcnet_gocor(checkpoint: Mapping) -> dict[int, dict]:
    """{level: local GOCor state dict in official names} for PWC-Net-GOCor's five local modules
    (``local_corr_6.`` … ``local_corr_2.``), from its state dict or the ``torch.load`` dict."""
    state_dict = official_state_dict(checkpoint)
    out = {}
    for level in PWCNET_LEVELS:
        prefix = f"local_corr_{level}."
        sd = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix + "filter_")}
        if sd:
            out[level] = sd
    if not out:
        shared = any(k.startswith("local_corr.filter_") for k in state_dict)
        raise KeyError("no GOCor parameters under 'local_corr_6.' … 'local_corr_2.' in this state dict"
                       + ("; it has one shared 'local_corr.' module: use split_glunet_gocor" if shared else ""))
    return out


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
