"""The one result type of the attribution methods: activation patching, AtP, RelP and integrated gradients.

An :class:`AttributionResult` holds one grid of cells per site (``"resid_pre"``: layer x position,
``"heads"``: layer x head, ...). ``effect`` is always the change of the metric that patching a cell
causes -- measured (activation patching) or estimated (AtP, RelP, IG) -- and ``values`` the metric after
the patch (``baseline + effect``), so the four methods can be compared cell by cell.

>>> res = patching.attribution_patching(model, clean, corrupted, metric, sites=["resid_pre", "heads"])  # doctest: +SKIP
>>> res["heads"].effect.shape          # (layer, head)                                                  # doctest: +SKIP
>>> res.to_frame()                     # one row per cell of every site                                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.errors import ConfigError, SiteError, closest
from interp.results import Result, themed

__all__ = ["AttributionResult", "SiteGrid"]


@dataclass
class SiteGrid:
    """The cells of one site: ``effect`` has shape ``[len(coords[d]) for d in dims]``.

    Parameters
    ----------
    site : str
        The site kind or hook name / module path.
    dims : tuple of str
        The grid's axes in order (``"layer"``, ``"pos"``, ``"head"``, ``"neuron"``, ``"unit"`` ...).
    coords : dict[str, list]
        Each axis's coordinate labels (layer numbers, positions, head indices ...).
    effect : torch.Tensor
        The scores, one per cell, shaped ``[len(coords[d]) for d in dims]``.
    """

    site: str
    dims: tuple[str, ...]
    coords: dict[str, list[Any]]
    effect: torch.Tensor

    def frame(self) -> pd.DataFrame:
        """Long table: one row per cell with its coordinates and ``effect``."""
        grids = np.meshgrid(*[np.asarray(self.coords[d], dtype=object) for d in self.dims], indexing="ij")
        frame = pd.DataFrame({d: g.reshape(-1) for d, g in zip(self.dims, grids)})
        for d in self.dims:
            if all(isinstance(v, (int, np.integer)) for v in self.coords[d]):
                frame[d] = frame[d].astype(int)
        frame["effect"] = self.effect.detach().cpu().double().reshape(-1).numpy()
        if "site" not in frame:  # a grid over named sites already has a site column (its first axis)
            frame.insert(0, "site", self.site)
        return frame


@dataclass
class AttributionResult(Result):
    """Cell scores of one attribution method over one or many sites.

    Parameters
    ----------
    method : str
        ``"activation"``, ``"atp"``, ``"relp"`` or ``"ig"``.
    metric : str
        The metric's name.
    clean_value, corrupted_value : float
        The metric on the unpatched clean and corrupted runs.
    direction : {"denoise", "noise"}
        ``"denoise"`` (clean activations patched into the corrupted run) or ``"noise"``.
    grids : dict[str, SiteGrid]
        ``{site: SiteGrid}`` in the order the sites were asked for.
    n_forward, n_backward : int
        Forward/backward passes over the batch it cost (batched patches count one pass per copy).
    extra : dict
        Method details (rules applied by RelP, integration steps of IG, shortcuts of activation patching ...).
    """

    method: str
    metric: str
    clean_value: float
    corrupted_value: float
    direction: str
    grids: dict[str, SiteGrid]
    n_forward: int = 0
    n_backward: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- access
    @property
    def sites(self) -> list[str]:
        """The sites (site kinds or names) in this result."""
        return list(self.grids)

    def __getitem__(self, site: str) -> AttributionResult:
        if site not in self.grids:
            from interp.engine import KIND_ALIASES

            alias = KIND_ALIASES.get(site)
            if alias in self.grids:
                site = alias
            else:
                hint = closest(site, self.sites)
                raise SiteError(f"no site {site!r} in this result; it has {self.sites}"
                                + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return replace(self, grids={site: self.grids[site]})

    def __iter__(self) -> Iterator[str]:
        return iter(self.grids)

    def __len__(self) -> int:
        return len(self.grids)

    def items(self) -> Iterator[tuple[str, AttributionResult]]:
        """``(site, single-site result)`` pairs."""
        return ((site, self[site]) for site in self.grids)

    @property
    def grid(self) -> SiteGrid:
        """The grid of a single-site result (index a multi-site result first: ``res["heads"]``)."""
        if len(self.grids) != 1:
            raise ConfigError(f"this result holds {len(self.grids)} sites {self.sites}; pick one first, e.g. "
                              f"res[{self.sites[0]!r}].effect")
        return next(iter(self.grids.values()))

    @property
    def effect(self) -> torch.Tensor:
        """Change of the metric caused by patching each cell (measured or estimated)."""
        return self.grid.effect

    @property
    def dims(self) -> tuple[str, ...]:
        """Axis names of the single site's grid."""
        return self.grid.dims

    @property
    def coords(self) -> dict[str, list[Any]]:
        """Index values along each axis of the single site's grid."""
        return self.grid.coords

    @property
    def baseline(self) -> float:
        """Metric of the unpatched run that receives the patches."""
        return self.corrupted_value if self.direction == "denoise" else self.clean_value

    @property
    def values(self) -> torch.Tensor:
        """The metric after each patch: measured (activation patching) or estimated (``baseline + effect``)."""
        return self.baseline + self.effect

    def normalized(self) -> torch.Tensor:
        """Effect over ``clean - corrupted``: 1 = the patch restores the clean metric (denoising)."""
        span = self.clean_value - self.corrupted_value
        sign = 1.0 if self.direction == "denoise" else -1.0
        return sign * self.effect / span if span != 0 else torch.full_like(self.effect, float("nan"))

    # ----------------------------------------------------------------- contract
    def to_frame(self) -> pd.DataFrame:
        """One row per cell of every site: site, coordinates, ``effect``, ``value`` and ``normalized``."""
        span = self.clean_value - self.corrupted_value
        sign = 1.0 if self.direction == "denoise" else -1.0
        frames = []
        for grid in self.grids.values():
            frame = grid.frame()
            frame["value"] = self.baseline + frame["effect"]
            frame["normalized"] = sign * frame["effect"] / span if span != 0 else np.nan
            frames.append(frame)
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        frame["method"], frame["metric"] = self.method, self.metric
        return frame

    def summary(self) -> str:
        """Method, metric, the two unpatched values and each site's strongest cells."""
        lines = [f"{self.method} attribution of {self.metric} ({self.direction}): clean {self.clean_value:.4g}, "
                 f"corrupted {self.corrupted_value:.4g}; {self.n_forward} forward / {self.n_backward} backward passes"]
        for site, grid in self.grids.items():
            effect = grid.effect.detach().double()
            flat = effect.reshape(-1)
            k = min(3, flat.numel())
            top = flat.abs().topk(k).indices.tolist() if k else []
            cells = []
            for i in top:
                where = np.unravel_index(i, tuple(effect.shape))
                name = " ".join(f"{d}={grid.coords[d][j]}" for d, j in zip(grid.dims, where))
                cells.append(f"{name}: {float(flat[i]):+.4g}")
            lines.append(f"  {site} {tuple(effect.shape)}: " + "; ".join(cells))
        if isinstance(self.extra.get("report"), str):  # RelP: where the rules went, conservation error
            lines += ["  " + line for line in self.extra["report"].splitlines()]
        return "\n".join(lines)

    def plot(self, value: str = "effect", title: str | None = None) -> Any:
        """Heatmap of each site's grid, one panel per site.

        Parameters
        ----------
        value : {"effect", "values", "normalized"}
            What to show: the effect, the patched metric values, or the normalized effect.
        title : str, optional
            The figure title (default names the method, value and metric).
        """
        from plotly.subplots import make_subplots

        grids = list(self.grids.values())
        fig = make_subplots(rows=1, cols=len(grids), subplot_titles=[g.site for g in grids],
                            horizontal_spacing=0.08)
        for col, grid in enumerate(grids, start=1):
            single = self[grid.site]
            data = {"effect": single.effect, "values": single.values, "normalized": single.normalized()}.get(value)
            if data is None:
                raise ConfigError(f"value must be 'effect', 'values' or 'normalized', got {value!r}")
            _add_heatmap(fig, grid, data.detach().cpu().double().numpy(), col)
        fig.update_layout(height=420, width=max(520, 420 * len(grids)))
        return themed(fig, title=title or f"{self.method} patching ({value}, metric {self.metric})")

    def __repr__(self) -> str:
        shapes = ", ".join(f"{s}: {'x'.join(str(len(g.coords[d])) for d in g.dims)}" for s, g in self.grids.items())
        return (f"AttributionResult({self.method}, {shapes}, metric={self.metric}, clean={self.clean_value:.4g}, "
                f"corrupted={self.corrupted_value:.4g})")


def _add_heatmap(fig: Any, grid: SiteGrid, data: np.ndarray, col: int) -> None:
    import plotly.graph_objects as go

    dims = grid.dims
    if data.ndim == 1:
        fig.add_trace(go.Bar(x=[str(c) for c in grid.coords[dims[0]]], y=data, showlegend=False), row=1, col=col)
        fig.update_xaxes(title_text=dims[0], row=1, col=col)
        return
    if data.ndim >= 3:  # (layer, a, b, ...) -> rows layer/b, columns a
        rows = [f"{dims[0]}{c0} {dims[2]}{c2}" for c0 in grid.coords[dims[0]] for c2 in grid.coords[dims[2]]]
        data = data.reshape(data.shape[0], data.shape[1], -1)[:, :, : len(grid.coords[dims[2]])]
        data = data.transpose(0, 2, 1).reshape(-1, data.shape[1])
    else:
        rows = [str(c) for c in grid.coords[dims[0]]]
    vmax = float(np.nanmax(np.abs(data))) if data.size and np.isfinite(data).any() else 1.0
    fig.add_trace(go.Heatmap(z=data, x=[str(c) for c in grid.coords[dims[1]]], y=rows, colorscale="RdBu",
                             zmid=0, zmin=-vmax, zmax=vmax, showscale=col == 1), row=1, col=col)
    fig.update_xaxes(title_text=dims[1], row=1, col=col)
    fig.update_yaxes(title_text=dims[0], row=1, col=col)
