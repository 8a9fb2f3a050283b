"""Interactive explorer: correlation vs GOCor volume slices for a chosen reference pixel.

The logic lives in :class:`VolumeExplorer` (pure, testable without a browser);
:meth:`VolumeExplorer.widget` wires it to ipywidgets sliders.
"""
from __future__ import annotations

import io

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from . import plots
from ..correlation import global_correlation
from ..module import GlobalGOCor


class VolumeExplorer:
    """reference_feat, query_feat (1, C, H, W); ``truth(y, x)`` optionally gives the true match."""

    def __init__(self, module: GlobalGOCor, reference_feat: Tensor, query_feat: Tensor,
                 query_image: Tensor | None = None, truth=None, max_steps: int = 10):
        self.module = module
        self.ref, self.query = reference_feat, query_feat
        self.query_image = query_image
        self.truth = truth
        self.h, self.w = reference_feat.shape[-2:]
        self.hq, self.wq = query_feat.shape[-2:]
        self.max_steps = max_steps
        self.correlation = global_correlation(reference_feat, query_feat)[0]
        self._gocor: dict[int, Tensor] = {}
        self.state = {"y": self.h // 2, "x": self.w // 2, "steps": module.config.num_iter}

    def gocor_volume(self, steps: int) -> Tensor:
        if steps not in self._gocor:            # one solve per step count, every pixel at once
            with torch.no_grad():
                self._gocor[steps] = self.module(self.ref, self.query, num_iter=steps)[0]
        return self._gocor[steps]

    def slices(self, y: int, x: int, steps: int) -> tuple[Tensor, Tensor]:
        """(correlation, GOCor) scores of reference pixel (y, x) over the query grid."""
        shape = (self.hq, self.wq)
        return self.correlation[:, y, x].view(shape), self.gocor_volume(steps)[:, y, x].view(shape)

    def render(self, y: int, x: int, steps: int, fig=None):
        fig = fig or plt.figure(figsize=(10, 4))
        fig.clear()
        corr, goc = self.slices(y, x, steps)
        truth = self.truth(y, x) if self.truth else None
        axes = fig.subplots(1, 2)
        plots.volume_slice(axes[0], corr, f"feature correlation, reference ({y}, {x})", truth, self.query_image)
        plots.volume_slice(axes[1], goc, f"GOCor, {steps} steps", truth, self.query_image)
        fig.tight_layout()
        return fig

    def update(self, **changes) -> tuple[Tensor, Tensor]:
        """The callback: clamp and store the new state, return the slices shown."""
        for key, value in changes.items():
            if key not in self.state:
                raise KeyError(f"unknown control {key!r}")
            limit = {"y": self.h - 1, "x": self.w - 1, "steps": self.max_steps}[key]
            self.state[key] = min(max(int(value), 0), limit)
        return self.slices(**self.state)

    def widget(self):
        import ipywidgets as W
        sliders = {
            "y": W.IntSlider(self.state["y"], 0, self.h - 1, description="ref y"),
            "x": W.IntSlider(self.state["x"], 0, self.w - 1, description="ref x"),
            "steps": W.IntSlider(self.state["steps"], 0, self.max_steps, description="steps"),
        }
        out = W.Output()

        def redraw(change=None):
            if change is not None:
                self.update(**{change["owner"].description.split()[-1]: change["new"]})
            from IPython.display import Image, display
            with out:
                out.clear_output(wait=True)
                fig = self.render(**self.state)
                buf = io.BytesIO()           # a PNG whatever the matplotlib backend (Agg shows no figure)
                fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
                plt.close(fig)
                display(Image(buf.getvalue()))

        for s in sliders.values():
            s.observe(redraw, names="value")
        redraw()
        return W.VBox([W.HBox(list(sliders.values())), out])
