"""The named configurations every command accepts: one name per model and training change.

Plain data (no torch): making a table of results (:mod:`.report`) imports only this.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    model: str                          # a key of gocor.lab.matcher.CONFIGS
    description: str
    train: dict = field(default_factory=dict)      # TrainConfig fields that differ from the profile


VARIANTS = {
    "corr": Variant("corr", "correlation at every level"),
    "global_lr": Variant("gocor_global_lr", "global GOCor, reference loss only; local correlation"),
    "global": Variant("gocor_global", "global GOCor (L_r + L_q); local correlation"),
    "gocor": Variant("gocor", "global GOCor (L_r + L_q) and local GOCor"),
    "gocor_local_lq": Variant("gocor_local_lq", "gocor with the local query loss (supplement)"),
    "init_zeros": Variant("gocor_global_init_zeros", "global GOCor, zeros initializer"),
    "init_simple": Variant("gocor_global_init_simple", "global GOCor, simple initializer"),
    "init_context": Variant("gocor_global_init_context", "global GOCor, context-aware initializer"),
    "gocor_frozen": Variant("gocor", "gocor with its objective (y, v+, m, λ, step, prior) frozen at init",
                            {"objective_lr_scale": 0.0}),
    "corr_post": Variant("corr_post", "correlation + a learned 4D post-processing of GOCor's parameter count"),
}
TABLE6 = ("corr", "global_lr", "global", "gocor")
