"""The named configurations: one registry, one name per configuration, accepted by every
command (``train --variant``, ``ablate --variants``, ``reproduce --variants``) and written into
every run's result.

A variant names the matcher (per level: correlation, or GOCor with these changes to the
matcher's level defaults, :data:`gocor.lab.models.matcher.GLOBAL_LEVEL` / ``LOCAL_LEVEL``)
and the changes to the training profile it needs. Plain data (no torch): making a table of
results (:mod:`.report`) imports only this.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import UserError

@dataclass(frozen=True)
class Variant:
    description: str
    global_gocor: Mapping | None = None     # GOCorConfig changes for the global level; None: correlation
    local_gocor: Mapping | None = None      # the same for both local levels; None: local correlation
    post_process: bool = False              # correlation + the learned 4D post-processing (the control)
    global_flow: bool = True                # False: no global level (the local levels start from zero flow)
    train: Mapping = field(default_factory=dict)    # TrainConfig fields that differ from the profile

    def matcher_fields(self) -> dict:
        """The arguments of :meth:`gocor.lab.models.matcher.MatcherConfig.build`."""
        return {"global_gocor": self.global_gocor, "local_gocor": self.local_gocor,
                "post_process": self.post_process, "global_flow": self.global_flow}


VARIANTS: dict[str, Variant] = {
    "corr": Variant("correlation at every level"),
    "global_lr": Variant("global GOCor, reference loss only; local correlation", global_gocor={"query_loss": False}),
    "global": Variant("global GOCor (L_r + L_q); local correlation", global_gocor={}),
    "gocor": Variant("global GOCor (L_r + L_q) and local GOCor", global_gocor={}, local_gocor={}),
    "gocor_local_lq": Variant("gocor with the local query loss (supplement)", global_gocor={},
                              local_gocor={"query_loss": True}),
    "init_zeros": Variant("global GOCor, zeros initializer", global_gocor={"initializer": "zeros"}),
    "init_simple": Variant("global GOCor, simple initializer", global_gocor={"initializer": "simple"}),
    "init_context": Variant("global GOCor, context-aware initializer", global_gocor={"initializer": "context"}),
    "gocor_frozen": Variant("gocor with its objective (y, v+, m, λ, step, prior) frozen at init",
                            global_gocor={}, local_gocor={}, train={"objective_lr_scale": 0.0}),
    "corr_post": Variant("correlation + a learned 4D post-processing of GOCor's parameter count",
                         post_process=True),
    "local": Variant("correlation at the global level; local GOCor", local_gocor={}),
    "gocor_0step": Variant("gocor with 0 solver steps at every level: the trained initializer's filters alone",
                           global_gocor={"num_iter": 0}, local_gocor={"num_iter": 0}),
    "no_global": Variant("corr without its global level (the local levels start from zero flow): is it needed?",
                         global_flow=False),
    "gocor_no_global": Variant("gocor without its global level (local GOCor from zero flow): does GOCor need it?",
                               local_gocor={}, global_flow=False),
}
TABLE6 = ("corr", "global_lr", "global", "gocor")

def variant(name: str) -> Variant:
    """The variant called ``name``; a :class:`UserError` listing the names otherwise."""
    if name not in VARIANTS:
        raise UserError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    return VARIANTS[name]


def run_name(name: str, seed: int) -> str:
    """The folder / file stem of one run: ``<variant>-seed<S>``."""
    return f"{name}-seed{seed}"


def parse_run_name(stem: str) -> tuple[str, int]:
    """Inverse of :func:`run_name`: (variant, seed)."""
    name, sep, seed = stem.rpartition("-seed")
    if not sep or not seed.isdigit():
        raise UserError(f"{stem!r} is not a run name <variant>-seed<S>")
    return name, int(seed)
