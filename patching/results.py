"""Result type shared by activation patching, attribution patching, RelP and integrated gradients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

__all__ = ["PatchingResult"]


@dataclass
class PatchingResult:
    """Scores of patching one kind of site over a grid of cells (e.g. layer x position).

    Attributes:
        values: ``[len(coords[d]) for d in dims]``. For ``method="activation"`` the metric after
            each patch (as ``transformer_lens.patching`` returns it); for attribution methods the
            estimated *change* of the metric that the patch causes.
        dims: names of the axes, e.g. ``("layer", "pos")`` or ``("layer", "head")``.
        coords: the index values along each axis.
        site: the site kind (``"resid_pre"``, ``"z"``...) or site names.
        method: ``"activation"``, ``"atp"``, ``"relp"`` or ``"ig"``.
        metric: the metric's name.
        clean_value, corrupted_value: the metric on the unpatched clean and corrupted runs.
        direction: ``"denoise"`` (clean activations patched into the corrupted run) or ``"noise"``.
        n_forward, n_backward: how many forward/backward passes over the batch it cost
            (batched patches count as one pass per batch copy).
    """

    values: torch.Tensor
    dims: tuple[str, ...]
    coords: dict[str, list[Any]]
    site: str
    method: str
    metric: str
    clean_value: float
    corrupted_value: float
    direction: str = "denoise"
    n_forward: int = 0
    n_backward: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def baseline(self) -> float:
        """Metric of the unpatched run that receives the patches."""
        return self.corrupted_value if self.direction == "denoise" else self.clean_value

    def effect(self) -> torch.Tensor:
        """Change of the metric caused by each patch (measured or estimated)."""
        return self.values - self.baseline if self.method == "activation" else self.values

    def normalized(self) -> torch.Tensor:
        """Effect divided by ``clean - corrupted``: 1 = the patch restores the clean metric (denoising)."""
        span = self.clean_value - self.corrupted_value
        sign = 1.0 if self.direction == "denoise" else -1.0
        return sign * self.effect() / span if span != 0 else torch.full_like(self.values, float("nan"))

    def to_frame(self, value: str = "effect") -> pd.DataFrame:
        """Long table: one row per cell with its coordinates, ``value`` and ``effect``."""
        grids = np.meshgrid(*[np.asarray(self.coords[d]) for d in self.dims], indexing="ij")
        frame = pd.DataFrame({d: g.reshape(-1) for d, g in zip(self.dims, grids)})
        frame["value"] = self.values.detach().cpu().double().reshape(-1).numpy()
        frame["effect"] = self.effect().detach().cpu().double().reshape(-1).numpy()
        frame["site"], frame["method"], frame["metric"] = self.site, self.method, self.metric
        return frame

    def plot(self, value: str = "effect", title: str | None = None):
        """Plotly heatmap (2-D grids, the last axis faceted for 3-D) or bar chart (1-D)."""
        import plotly.express as px

        data = (self.effect() if value == "effect" else self.values).detach().cpu().double().numpy()
        title = title or f"{self.method} patching of {self.site} ({value}, metric {self.metric})"
        if data.ndim == 1:
            return px.bar(x=[str(c) for c in self.coords[self.dims[0]]], y=data, title=title,
                          labels={"x": self.dims[0], "y": value})
        if data.ndim == 3:
            data = data.transpose(0, 2, 1).reshape(data.shape[0] * data.shape[2], data.shape[1])
            ylabels = [f"L{layer} {self.dims[2]}{h}" for layer in self.coords[self.dims[0]] for h in self.coords[self.dims[2]]]
            x = [str(c) for c in self.coords[self.dims[1]]]
            ylab = f"{self.dims[0]}/{self.dims[2]}"
        else:
            ylabels = [str(c) for c in self.coords[self.dims[0]]]
            x = [str(c) for c in self.coords[self.dims[1]]]
            ylab = self.dims[0]
        vmax = float(np.nanmax(np.abs(data))) if data.size and np.isfinite(data).any() else 1.0
        fig = px.imshow(data, x=x, y=ylabels, color_continuous_scale="RdBu", zmin=-vmax, zmax=vmax, aspect="auto",
                        labels={"x": self.dims[-1] if data.ndim == 2 and len(self.dims) == 2 else self.dims[1],
                                "y": ylab, "color": value}, title=title)
        return fig

    def __repr__(self) -> str:
        shape = "x".join(str(len(self.coords[d])) for d in self.dims)
        return (f"PatchingResult({self.method}, site={self.site!r}, dims={self.dims} [{shape}], metric={self.metric}, "
                f"clean={self.clean_value:.4g}, corrupted={self.corrupted_value:.4g})")
