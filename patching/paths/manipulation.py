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

__all__ = ["manipulate", "PathComparison", "compare_paths", "prune"]


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

    Source: Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025 (arXiv
    2503.09046); code ``foundation-model-research/NeuronPath`` at commit 5f93d0b (``modeling_VIT_edit.py``).
    Differences: every sample's path is edited in one batched pass; ``delta_p`` is reported beside their ratio.

    Returns one row per sample: ``p_clean``, ``p_edit``, ``delta_p`` (softmax probability of the target),
    ``ratio_p`` (``p_edit / p_clean``: the paper's probability deviation),
    ``correct_clean``, ``correct_edit`` (argmax == target).

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` or any ``nn.Module``.
    inputs : Any
        The samples on dim 0 (images, or token ids of equal length).
    targets : int or array_like
        The target class (or token) of each sample, ``(n,)``, or one for all.
    paths : NeuronPaths or torch.Tensor
        The paths: a :class:`NeuronPaths` or an ``(n, n_layers[, K])`` index tensor.
    sites : Sequence[str], optional
        One site per layer, in layer order (default the paths' sites, else :func:`mlp_sites`).
    op : {"remove", "enhance"}
        Set the path neurons to 0, or multiply them by ``factor``.
    factor : float
        The multiplier of ``"enhance"``.
    position : int or torch.Tensor, optional
        Token position of the neurons (0 = CLS of a ViT, -1 = last token of an LM); an ``(n,)`` tensor gives
        one position per sample. Logits of ``(batch, pos, vocab)`` outputs are read there too.
    forward : Callable, optional
        ``forward(model, inputs) -> logits`` (default ``model(inputs)``).
    batch_size : int
        Samples per forward pass.
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

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per (sample, method, op) with ``delta_p``, ``ratio_p``, ``correct_clean``, ``correct_edit``,
        ``jas`` (random paths: averaged over ``n_random`` draws).
    paths : dict[str, NeuronPaths]
        The paths found by each method.
    alpha : float
        1 - the confidence level of the intervals (0.05: 95% CIs).
    """

    frame: pd.DataFrame
    paths: dict[str, NeuronPaths]
    alpha: float = 0.05

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def summary(self) -> str:
        """Per op, each method's probability ratio p_edit / p_clean averaged per class (the authors'
        headline), the mean change of P(target), with CIs, and the mean JAS."""
        lines = ["Path manipulation: p_edit / p_clean, mean of per-class means (95% CI over classes); "
                 "mean change of P(target) (95% CI over samples)"]
        for row in self.means().itertuples():
            lines.append(f"  {row.op} {row.method}: ratio {row.ratio_p_class:.4g} [{row.ratio_p_class_lo:.4g}, "
                         f"{row.ratio_p_class_hi:.4g}], delta {row.delta_p:+.4g} [{row.delta_p_lo:+.4g}, "
                         f"{row.delta_p_hi:+.4g}], JAS {row.jas:.4g}, n={row.n}")
        return "\n".join(lines)

    def by_class(self) -> pd.DataFrame:
        """Per (op, method, target class): mean ``ratio_p`` (p_edit / p_clean per image), ``delta_p`` and
        JAS, as the authors average per class (``analysis/plot_probability_deviation.ipynb``)."""
        return (self.frame.groupby(["op", "method", "target"], sort=False)
                .agg(n=("sample", "count"), ratio_p=("ratio_p", "mean"), delta_p=("delta_p", "mean"), jas=("jas", "mean"))
                .reset_index())

    def means(self) -> pd.DataFrame:
        """Per (op, method): mean JAS, change of P(target), ratio p_edit / p_clean (over samples, and
        ``ratio_p_class``: the mean of the per-class means with a t-interval over classes), change of
        accuracy."""
        out = []
        per_class = self.by_class()
        for (op, method), g in self.frame.groupby(["op", "method"], sort=False):
            m, lo, hi = t_interval(g["delta_p"].to_numpy(), self.alpha)
            rm, rlo, rhi = t_interval(g["ratio_p"].to_numpy(), self.alpha)
            jm, jlo, jhi = t_interval(g["jas"].to_numpy(), self.alpha)
            cls = per_class[(per_class["op"] == op) & (per_class["method"] == method)]["ratio_p"].to_numpy()
            cm, clo, chi = t_interval(cls, self.alpha) if len(cls) > 1 else (float(cls.mean()), np.nan, np.nan)
            acc = float(g["correct_edit"].mean() - g["correct_clean"].mean())
            out.append({"op": op, "method": method, "n": len(g), "n_classes": len(cls), "jas": jm, "jas_lo": jlo,
                        "jas_hi": jhi, "ratio_p_class": cm, "ratio_p_class_lo": clo, "ratio_p_class_hi": chi,
                        "delta_p": m, "delta_p_lo": lo, "delta_p_hi": hi, "ratio_p": rm, "ratio_p_lo": rlo,
                        "ratio_p_hi": rhi, "delta_acc": acc})
        return pd.DataFrame(out)

    def contrast(self, ours: str = "jas", op: str = "remove", column: str = "delta_p") -> pd.DataFrame:
        """Paired differences ``ours - other`` per sample of ``column`` (mean and CI) for every other method.

        Parameters
        ----------
        ours : str
            The method compared with every other one.
        op : {"remove", "enhance"}
            Which manipulation's rows.
        column : str
            The per-sample column compared (``"delta_p"``, ``"ratio_p"``, ``"jas"`` ...).
        """
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

    def plot(self, column: str = "ratio_p_class"):
        """Bar chart per method and op of ``column`` (default the authors' headline, p_edit / p_clean
        averaged per class; ``"delta_p"`` for the change of P(target)), with CI error bars (plotly).

        Parameters
        ----------
        column : str
            A column of :meth:`means` that has ``_lo`` and ``_hi`` bounds (``"ratio_p_class"``, ``"delta_p"``).
        """
        import plotly.graph_objects as go

        s = self.means()
        fig = go.Figure()
        for op, g in s.groupby("op", sort=False):
            fig.add_bar(name=op, x=g["method"], y=g[column],
                        error_y=dict(type="data", symmetric=False, array=g[f"{column}_hi"] - g[column],
                                     arrayminus=g[column] - g[f"{column}_lo"]))
        title = ("Target probability ratio p_edit / p_clean (mean of class means) when path neurons are edited"
                 if column == "ratio_p_class" else f"{column} when path neurons are edited")
        fig.update_layout(barmode="group", title=title, yaxis_title=column, xaxis_title="path method")
        return themed(fig)

    def report_section(self) -> list[Any]:
        """Summary, the effect bars, means with CIs, paired contrasts against each baseline, and one path
        diagram per method."""
        contrasts = pd.concat([self.contrast("jas", op=op, column=c) for op in self.frame["op"].unique()
                               for c in ("ratio_p", "delta_p", "jas")], ignore_index=True) if "jas" in self.paths else None
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

    Source: Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025 (arXiv
    2503.09046); code ``foundation-model-research/NeuronPath`` at commit 5f93d0b (``path/``,
    ``plot_probability_deviation.ipynb``). Differences: the baselines (activation, the authors' influence
    pattern ``mean_gradient``, random) and the per-class ``ratio_p`` headline are computed in one call with
    paired intervals (theirs: separate scripts and plots).

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` or any ``nn.Module``.
    inputs : Any
        The samples on dim 0 (images, or token ids of equal length).
    targets : int or array_like
        The target class (or token) of each sample, ``(n,)``, or one for all.
    sites : Sequence[str], optional
        One site per layer, in layer order (default :func:`mlp_sites`).
    methods : Sequence[str]
        Path methods of :func:`find_paths` to compare (default all of ``METHODS``).
    ops : Sequence[str]
        Manipulations: ``"remove"`` and/or ``"enhance"``.
    n_random : int
        Draws of random paths (their rows are averaged).
    position : int or torch.Tensor, optional
        Token position of the neurons (0 = CLS of a ViT, -1 = last token of an LM); an ``(n,)`` tensor gives
        one position per sample. Logits of ``(batch, pos, vocab)`` outputs are read there too.
    steps : int
        m, the number of Riemann steps of the JAS.
    top_k : int
        Neurons per layer.
    ig_batch : int, optional
        Interpolation steps per forward pass (default all m at once).
    batch_size : int
        Samples per search batch.
    forward : Callable, optional
        ``forward(model, inputs) -> logits`` (default ``model(inputs)``).
    input_site : str, optional
        For token inputs: the site whose output is scaled from zero (default ``hook_embed`` of a bridge);
        float inputs are scaled themselves.
    seed : int
        Seed of the random paths.
    progress : bool
        Show progress bars.

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




def _class_paths(paths: torch.Tensor, targets: torch.Tensor, n_first: int) -> dict[int, torch.Tensor]:
    """Per class, the most frequent neuron at each (layer, rank) over its first ``n_first`` paths
    (``scipy.stats.mode`` along the samples, smallest index on ties, as the authors' ``most_frequent``)."""
    out = {}
    for cls in torch.unique(targets).tolist():
        members = paths[targets == cls][:n_first].long()
        n_units = int(members.max()) + 1
        counts = torch.nn.functional.one_hot(members, n_units).sum(0)  # (layers, K, n_units)
        out[int(cls)] = counts.argmax(-1)  # first maximum: the smallest index on ties
    return out


def prune(
    model: Any,
    inputs: Any,
    targets: Any,
    paths: NeuronPaths | torch.Tensor,
    sites: Sequence[str] | None = None,
    *,
    fraction: float = 0.5,
    n_first: int = 40,
    position: int | torch.Tensor | None = 0,
    forward: Callable | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> pd.DataFrame:
    """The authors' pruning protocol: keep each class's path neurons, zero a random ``fraction`` of the rest.

    Source: Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025 (arXiv
    2503.09046); code ``foundation-model-research/NeuronPath`` at commit 5f93d0b.

    NeuronPath (Wang et al. 2025; code commit 5f93d0b, ``topk/.../compression_amplify.py`` and
    ``modeling_VIT_edit.py``, ``edit_operation="prune"``): a class's path is the most frequent neuron at
    each (layer, rank) over the first ``n_first`` (40) paths of its images; at every path layer, at the
    token ``position``, each neuron not on the class path is zeroed with probability ``fraction`` (their
    ``maskProsion``, 0.01-0.10 in their scripts' ``p1``-``p10``), drawn independently per image and layer.
    Returns :func:`manipulate`'s columns (``op="prune"``). Differences: the random masks come from a
    ``torch.Generator`` seeded with ``seed`` (theirs: ``numpy.random``); all images of a class are edited
    (theirs: 10 per class).

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` or any ``nn.Module``.
    inputs : Any
        The samples on dim 0 (images, or token ids of equal length).
    targets : int or array_like
        The target class (or token) of each sample, ``(n,)``, or one for all.
    paths : NeuronPaths or torch.Tensor
        The paths: a :class:`NeuronPaths` or an ``(n, n_layers[, K])`` index tensor.
    sites : Sequence[str], optional
        One site per layer, in layer order (default the paths' sites, else :func:`mlp_sites`).
    fraction : float
        Probability in [0, 1] of zeroing each neuron that is not on the class path.
    n_first : int
        How many paths of each class (the first ones) vote for the class path.
    position : int or torch.Tensor, optional
        Token position of the neurons (0 = CLS of a ViT, -1 = last token of an LM); an ``(n,)`` tensor gives
        one position per sample. Logits of ``(batch, pos, vocab)`` outputs are read there too.
    forward : Callable, optional
        ``forward(model, inputs) -> logits`` (default ``model(inputs)``).
    batch_size : int
        Samples per forward pass.
    seed : int
        Seed of the random masks.
    """
    if not 0 <= float(fraction) <= 1:
        raise ConfigError(f"fraction is the probability of zeroing each non-path neuron, in [0, 1]; got {fraction}")
    if isinstance(paths, NeuronPaths) and sites is None:
        sites = paths.sites
    sites = mlp_sites(model) if sites is None else list(sites)
    idx = paths.indices if isinstance(paths, NeuronPaths) else torch.as_tensor(paths)
    if idx.ndim == 2:
        idx = idx[:, :, None]
    tt = torch.as_tensor(targets).reshape(-1)
    if tt.numel() != idx.shape[0]:
        raise ConfigError(f"prune needs one target per path ({idx.shape[0]} paths, {tt.numel()} targets)")
    class_path = _class_paths(idx.cpu(), tt.cpu(), int(n_first))
    gen = torch.Generator().manual_seed(int(seed))
    runner = SiteRunner(model, sites, position, forward)
    rows = []
    for sl, x in batches(inputs, batch_size):
        if isinstance(position, torch.Tensor) and position.ndim > 0:
            runner.position = position.reshape(-1)[sl]
        h, clean = runner.capture(x)
        t = targets_of(tt[sl], len(h[0]), clean.shape[-1]).to(clean.device)
        edits = {}
        for li in range(min(len(h), idx.shape[1])):
            d = h[li].shape[1]
            keep = torch.stack([neuron_mask(class_path[int(c)][li][None], d)[0] for c in t.cpu().tolist()])
            drop = (torch.rand(len(t), d, generator=gen) < float(fraction)) & ~keep.cpu()
            edits[li] = _scaled_where(drop.to(h[li].device), 0.0)
        with torch.no_grad():
            edited = runner.logits(x, edits)
        p0, p1 = target_prob(clean, t), target_prob(edited, t)
        rows.append(pd.DataFrame({"sample": np.arange(sl.start, sl.stop), "target": t.cpu().numpy(),
                                  "p_clean": p0.cpu().numpy(), "p_edit": p1.cpu().numpy(),
                                  "delta_p": (p1 - p0).cpu().numpy(),
                                  "ratio_p": (p1 / p0.clamp_min(1e-30)).cpu().numpy(),
                                  "correct_clean": (clean.argmax(-1) == t).cpu().numpy(),
                                  "correct_edit": (edited.argmax(-1) == t).cpu().numpy()}))
    frame = pd.concat(rows, ignore_index=True)
    frame["op"] = "prune"
    return frame
