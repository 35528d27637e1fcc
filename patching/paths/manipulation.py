"""Path manipulation (remove / enhance the path neurons) and the comparison of path methods."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.errors import ConfigError
from interp.results import Result, themed
from interp.stats import t_interval

from .results import NeuronPaths
from .runner import SiteRunner, batches, mlp_sites, neuron_mask, target_prob, targets_of
from .search import METHODS, _as_path_list, _check_common, _scaled_where, _validated, find_paths

__all__ = ["manipulate", "PathComparison", "compare_paths"]


def manipulate(
    model: Any,
    inputs: Any,
    targets: Any,
    paths: NeuronPaths | torch.Tensor,
    sites: Sequence[str] | None = None,
    *,
    op: str = "remove",
    factor: float = 2.0,
    position: int | torch.Tensor | None = 0,
    forward: Callable | None = None,
    batch_size: int = 64,
) -> pd.DataFrame:
    """Remove (set to 0) or enhance (multiply by ``factor``) each sample's path neurons at once.

    Returns one row per sample: ``p_clean``, ``p_edit``, ``delta_p`` (softmax probability of the target),
    ``ratio_p`` (``p_edit / p_clean``: the paper's probability deviation),
    ``correct_clean``, ``correct_edit`` (argmax == target).
    """
    if op not in ("remove", "enhance"):
        raise ConfigError(f"op must be 'remove' or 'enhance'; got {op!r}")
    if isinstance(paths, NeuronPaths) and sites is None:
        sites = paths.sites
    sites = mlp_sites(model) if sites is None else list(sites)
    runner = SiteRunner(model, sites, position, forward)
    rows = []
    tt = torch.as_tensor(targets).reshape(-1)
    for sl, x in batches(inputs, batch_size):
        if isinstance(position, torch.Tensor) and position.ndim > 0:
            runner.position = position.reshape(-1)[sl]
        h, clean = runner.capture(x)
        t = targets_of(tt[sl] if tt.numel() > 1 else tt, len(h[0]), clean.shape[-1]).to(clean.device)
        path = _validated(_as_path_list(paths, sl), h, sites)
        edits = {}
        for li, p in enumerate(path):
            mask = neuron_mask(p.to(h[li].device), h[li].shape[1])
            scale = 0.0 if op == "remove" else float(factor)
            edits[li] = _scaled_where(mask, scale)
        with torch.no_grad():
            edited = runner.logits(x, edits)
        p0, p1 = target_prob(clean, t), target_prob(edited, t)
        rows.append(pd.DataFrame({
            "sample": np.arange(sl.start, sl.stop),
            "target": t.cpu().numpy(),
            "p_clean": p0.cpu().numpy(),
            "p_edit": p1.cpu().numpy(),
            "delta_p": (p1 - p0).cpu().numpy(),
            "ratio_p": (p1 / p0.clamp_min(1e-30)).cpu().numpy(),
            "correct_clean": (clean.argmax(-1) == t).cpu().numpy(),
            "correct_edit": (edited.argmax(-1) == t).cpu().numpy(),
        }))
    frame = pd.concat(rows, ignore_index=True)
    frame["op"] = op
    return frame


@dataclass
class PathComparison(Result):
    """Paths of several methods on the same samples, their JAS and manipulation effects.

    ``frame``: one row per (sample, method, op) with ``delta_p``, ``correct_clean``, ``correct_edit``, ``jas``
    (random paths: averaged over ``n_random`` draws). ``paths``: the :class:`NeuronPaths` per method.
    """

    frame: pd.DataFrame
    paths: dict[str, NeuronPaths]
    alpha: float = 0.05

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def summary(self) -> str:
        """Per op, the mean change of P(target) of each method with its CI."""
        lines = ["Path manipulation: mean change of P(target) (95% CI) per method"]
        for row in self.means().itertuples():
            lines.append(f"  {row.op} {row.method}: {row.delta_p:+.4g} [{row.delta_p_lo:+.4g}, {row.delta_p_hi:+.4g}], "
                         f"JAS {row.jas:.4g}, n={row.n}")
        return "\n".join(lines)

    def means(self) -> pd.DataFrame:
        """Per (op, method): mean JAS, mean change of P(target) and of accuracy, with t-based CIs."""
        out = []
        for (op, method), g in self.frame.groupby(["op", "method"], sort=False):
            m, lo, hi = t_interval(g["delta_p"].to_numpy(), self.alpha)
            rm, rlo, rhi = t_interval(g["ratio_p"].to_numpy(), self.alpha)
            jm, jlo, jhi = t_interval(g["jas"].to_numpy(), self.alpha)
            acc = float(g["correct_edit"].mean() - g["correct_clean"].mean())
            out.append({"op": op, "method": method, "n": len(g), "jas": jm, "jas_lo": jlo, "jas_hi": jhi,
                        "delta_p": m, "delta_p_lo": lo, "delta_p_hi": hi, "ratio_p": rm, "ratio_p_lo": rlo,
                        "ratio_p_hi": rhi, "delta_acc": acc})
        return pd.DataFrame(out)

    def contrast(self, ours: str = "jas", op: str = "remove", column: str = "delta_p") -> pd.DataFrame:
        """Paired differences ``ours - other`` per sample of ``column`` (mean and CI) for every other method."""
        f = self.frame[self.frame["op"] == op]
        wide = f.pivot(index="sample", columns="method", values=column)
        out = []
        for other in wide.columns:
            if other == ours:
                continue
            m, lo, hi = t_interval((wide[ours] - wide[other]).to_numpy(), self.alpha)
            out.append({"op": op, "column": column, "ours": ours, "other": other, "mean_diff": m, "lo": lo, "hi": hi,
                        "ci_excludes_zero": bool(lo > 0 or hi < 0)})
        return pd.DataFrame(out)

    def plot(self):
        """Bar chart of mean change in P(target) per method and op, with CI error bars (plotly)."""
        import plotly.graph_objects as go

        s = self.means()
        fig = go.Figure()
        for op, g in s.groupby("op", sort=False):
            fig.add_bar(name=op, x=g["method"], y=g["delta_p"],
                        error_y=dict(type="data", symmetric=False, array=g["delta_p_hi"] - g["delta_p"],
                                     arrayminus=g["delta_p"] - g["delta_p_lo"]))
        fig.update_layout(barmode="group", title="Change in target probability when path neurons are edited",
                          yaxis_title="mean Δ P(target)", xaxis_title="path method")
        return themed(fig)

    def report_section(self) -> list[Any]:
        """Summary, the effect bars, means with CIs, paired contrasts against each baseline, and one path
        diagram per method."""
        contrasts = pd.concat([self.contrast("jas", op=op, column=c) for op in self.frame["op"].unique()
                               for c in ("delta_p", "jas")], ignore_index=True) if "jas" in self.paths else None
        parts: list[Any] = [self._summary_html(), self.plot(), "<h3>Means and 95% CIs</h3>", self.means().round(5)]
        if contrasts is not None and len(contrasts):
            parts += ["<h3>Ours (JAS) minus each baseline, paired over samples</h3>", contrasts.round(5)]
        for method, p in self.paths.items():
            parts.append(p.plot(title=f"Path diagram: {method}"))
        return parts


def compare_paths(
    model: Any,
    inputs: Any,
    targets: Any,
    sites: Sequence[str] | None = None,
    *,
    methods: Sequence[str] = METHODS,
    ops: Sequence[str] = ("remove", "enhance"),
    n_random: int = 5,
    position: int | torch.Tensor | None = 0,
    steps: int = 20,
    top_k: int = 1,
    ig_batch: int | None = None,
    batch_size: int = 16,
    forward: Callable | None = None,
    input_site: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> PathComparison:
    """Find paths with each method, score them (JAS) and remove/enhance them (Wang et al. 2025, Sec. 5).

    >>> cmp = compare_paths(vit, images, labels, position=0)  # doctest: +SKIP
    >>> cmp.contrast("jas", op="remove")   # ours - other, paired over samples, with 95% CIs
    """
    for m in methods:
        _check_common(steps, top_k, m)
    sites = mlp_sites(model) if sites is None else list(sites)
    common = dict(position=position, steps=steps, top_k=top_k, ig_batch=ig_batch, batch_size=batch_size,
                  forward=forward, input_site=input_site)
    found: dict[str, NeuronPaths] = {}
    frames = []
    for method in methods:
        draws = n_random if method == "random" else 1
        per_draw = []
        for d in range(draws):
            p = find_paths(model, inputs, targets, sites, method=method, seed=seed + d, progress=progress, **common)
            if d == 0:
                found[method] = p
            for op in ops:
                f = manipulate(model, inputs, p.targets, p, sites, op=op, position=position, forward=forward)
                f["jas"] = p.jas.numpy()
                f["draw"] = d
                per_draw.append(f)
        f = pd.concat(per_draw)
        f = f.groupby(["sample", "op"], sort=False).agg(
            target=("target", "first"), p_clean=("p_clean", "first"), p_edit=("p_edit", "mean"),
            delta_p=("delta_p", "mean"), ratio_p=("ratio_p", "mean"), correct_clean=("correct_clean", "first"),
            correct_edit=("correct_edit", "mean"), jas=("jas", "mean")).reset_index()
        f["method"] = method
        frames.append(f)
    return PathComparison(frame=pd.concat(frames, ignore_index=True), paths=found)


