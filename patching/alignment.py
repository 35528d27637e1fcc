"""Causal brain alignment: how much of a model's similarity to the brain depends on one of its components?

Ablate a component (a group of channels, attention heads, SAE or NMF latents, a whole site) with
:func:`patching.intervene`, read the model out at a later site, and score the read-out against the recording
with the measures of :mod:`interp.similarity` (RSA) or an encoding model (:mod:`probes`). The drop from the
intact model is the part of the model's brain-likeness that runs through the component. Stimuli are resampled
with replacement and the intact and ablated scores are recomputed on the *same* resample, so the CI is that of
the paired difference (percentile bootstrap; for RSA the pairs of a stimulus with its own copy are dropped,
as rsatoolbox does).

* :class:`Ablation`: where and what: ``channels`` (axis 1 of a conv map ``(N, C, H, W)``, else the last
  axis), ``heads`` (per-head sites of a bridge), ``latents`` of a fitted ``decomposition`` (an SAE latent is
  ablated by subtracting its decoder contribution ``code * decoder row`` at the site; ``kind="mean"`` sets the
  code to its mean over the stimuli instead), or the whole site; ``kind`` ``"mean"`` (over the stimuli) or ``"zero"``.
* :func:`channel_groups`, :func:`latent_ablations`, :func:`head_ablations`: build many ablations at once.
* :func:`brain_alignment`: score them all; returns :class:`AlignmentResult`.
* :func:`k92_it_alignment`: the worked example: which ``efficientnet-lite0`` blocks and channel groups carry its
  similarity to human IT in the 92-image set of Kriegeskorte et al. (2008).

For models built as a ``ModuleList`` of blocks (``model.blocks``, ``model._blocks``, ... found from the site
names), the blocks before the first ablated one are not recomputed: their recorded outputs are replayed
(checked once against a full forward pass; without a match every run is a full pass, ``attrs["replay"]``).

>>> res = brain_alignment(model, images, k92.rdms.sel(name="human_IT_s*"),           # doctest: +SKIP
...                       channel_groups(model, "_blocks.13._depthwise_act", 4), readout="_blocks.15",
...                       preprocess=prep, n_bootstraps=500)
>>> res.rank()                                                                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from interp import engine
from interp._progress import tqdm
from interp.errors import ConfigError, InputTypeError, MismatchError
from interp.results import Result, themed
from interp.similarity.compare import expand_sites, rdms_from_recording
from interp.similarity.rdm import rdm, upper_tri
from interp.similarity.rsa import canonical_method
from interp.similarity.stats import pattern_statistic, rdm_bootstrap
from interp.stats import p_value, percentile_interval
from interp.tensor import Activations

from ._alignment_run import _interventions, _Runner
from .interventions import Intervention

__all__ = ["Ablation", "AlignmentResult", "brain_alignment", "channel_groups", "latent_ablations", "head_ablations",
           "k92_it_alignment"]


# --------------------------------------------------------------------------------------------- ablations
@dataclass
class Ablation:
    """One ablation at ``site``: ``channels``, ``heads``, ``latents`` of ``decomposition``, ``channel_group=(k, n)``
    or, with none of these, the whole site (at most one of the four).

    Parameters
    ----------
    site : str
        Module path (or hook name on a bridge) whose output is ablated.
    kind : {"mean", "zero"}
        Replace by the mean over the stimuli of this analysis, or by zero.
    channels : int or Sequence[int], optional
        Channel indices: axis 1 of a conv map ``(N, C, H, W)``, else the last axis.
    heads : int or Sequence[int], optional
        Head indices of a per-head site of a bridge.
    latents : int or Sequence[int], optional
        Latent indices of ``decomposition`` (their decoder contribution is removed at the site).
    decomposition : Any, optional
        A fitted SAE, NMF or SNMF with ``transform`` and ``inverse_transform`` (required with ``latents``).
    channel_group : tuple of (int, int), optional
        ``(k, n)``: the k-th (from 0) of ``n`` channel groups.
    grouping : {"contiguous", "random"}
        How the channels are split into the ``n`` groups.
    seed : int
        Seed of the random grouping.
    """

    site: str
    kind: str = "mean"
    channels: Any = None
    heads: Any = None
    latents: Any = None
    decomposition: Any = None
    channel_group: tuple[int, int] | None = None
    grouping: str = "contiguous"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("mean", "zero"):
            raise ConfigError(f"ablation kind must be 'mean' or 'zero', got {self.kind!r}")
        if sum(x is not None for x in (self.channels, self.heads, self.latents, self.channel_group)) > 1:
            raise ConfigError("an Ablation takes one of channels=, heads=, latents= or channel_group=")
        if self.latents is not None and not (hasattr(self.decomposition, "transform")
                                             and hasattr(self.decomposition, "inverse_transform")):
            raise ConfigError("latents= needs decomposition= (a fitted SAE, NMF or SNMF with transform and "
                              "inverse_transform)")
        if self.grouping not in ("contiguous", "random"):
            raise ConfigError(f"grouping must be 'contiguous' or 'random', got {self.grouping!r}")

    def resolved_channels(self, n_channels: int) -> Any:
        """Channel indices (``channels``, or the ``channel_group`` of ``n_channels``).

        Parameters
        ----------
        n_channels : int
            The site's number of channels, split into the groups of ``channel_group``.
        """
        if self.channel_group is None:
            return self.channels
        k, n = self.channel_group
        if not 0 <= k < n <= n_channels:
            raise ConfigError(f"channel_group {self.channel_group} is not a group of {n} among {n_channels} channels")
        order = np.arange(n_channels) if self.grouping == "contiguous" else \
            np.random.default_rng(self.seed).permutation(n_channels)
        return np.sort(np.array_split(order, n)[k])


def channel_groups(model: nn.Module, sites: str | Sequence[str], n_groups: int = 4, *, kind: str = "mean",
                   grouping: str = "contiguous", seed: int = 0) -> dict[str, Ablation]:
    """One :class:`Ablation` per channel group per site (globs allowed): ``{"site[k/n]": Ablation}``.

    Parameters
    ----------
    model : torch.nn.Module
        The model whose sites the globs are matched against.
    sites : str or Sequence[str]
        Module paths or globs (``"_blocks.*._depthwise_act"``).
    n_groups : int
        Groups per site.
    kind : {"mean", "zero"}
        Replace by the mean over the stimuli, or by zero.
    grouping : {"contiguous", "random"}
        How the channels are split.
    seed : int
        Seed of the random grouping.
    """
    return {f"{s}[{k + 1}/{n_groups}]": Ablation(s, kind, channel_group=(k, n_groups), grouping=grouping, seed=seed)
            for s in expand_sites(model, sites) for k in range(n_groups)}


def latent_ablations(site: str, decomposition: Any, latents: Sequence[Any], *, kind: str = "zero"
                     ) -> dict[str, Ablation]:
    """One :class:`Ablation` per entry of ``latents``: ``{"site:latent i": Ablation}``.

    Parameters
    ----------
    site : str
        The site the decomposition was fitted on.
    decomposition : Any
        A fitted SAE, NMF or SNMF with ``transform`` and ``inverse_transform``.
    latents : Sequence
        Each entry an index or a list of indices of the decomposition, ablated together.
    kind : {"mean", "zero"}
        Set the latents' codes to their mean over the stimuli, or remove them (default).
    """
    return {f"{site}:latent {lat}": Ablation(site, kind, latents=lat, decomposition=decomposition) for lat in latents}


def head_ablations(model: nn.Module, sites: str | Sequence[str], *, kind: str = "mean") -> dict[str, Ablation]:
    """One :class:`Ablation` per attention head of each per-head site: ``{"site:H<h>": Ablation}``.

    Parameters
    ----------
    model : TransformerBridge
        A bridge (``model.cfg.n_heads`` gives the heads).
    sites : str or Sequence[str]
        Per-head hook names or globs (``"blocks.*.attn.hook_z"``).
    kind : {"mean", "zero"}
        Replace by the mean over the stimuli, or by zero.
    """
    n_heads = getattr(getattr(model, "cfg", None), "n_heads", None)
    if n_heads is None:
        raise InputTypeError("head_ablations needs a TransformerBridge (model.cfg.n_heads)")
    return {f"{s}:H{h}": Ablation(s, kind, heads=[h]) for s in expand_sites(model, sites) for h in range(n_heads)}


# ----------------------------------------------------------------------------------------------- result
@dataclass
class AlignmentResult(Result):
    """One row per (read-out site, ablation): ``intact`` and ``ablated`` similarity, ``delta`` = ablated -
    intact with its paired bootstrap CI (``low``, ``high``), ``p_value`` (two-sided bootstrap) and
    ``significant`` (the CI excludes 0).

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per (read-out, ablation): ``readout``, ``ablation``, ``site``, ``kind``, ``intact``,
        ``ablated``, ``delta``, ``low``, ``high``, ``p_value``, ``significant``.
    samples : dict
        ``{readout: paired bootstrap scores (n_bootstraps, 1 + n_ablations)}``, column 0 intact.
    attrs : dict
        The settings: ``method``, ``measure``, ``n_bootstraps``, ``level``, ``seed``, ``replay``, ``model``,
        ``recording``, ``n_stimuli`` ...
    """

    frame: pd.DataFrame
    samples: dict = field(default_factory=dict, repr=False)
    attrs: dict = field(default_factory=dict, repr=False)

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def rank(self, readout: str | None = None) -> pd.DataFrame:
        """Ablations ordered by how much similarity they remove (largest drop first).

        Parameters
        ----------
        readout : str, optional
            Keep only this read-out site's rows (default all).
        """
        f = self.frame if readout is None else self.frame[self.frame["readout"] == readout]
        return f.sort_values("delta").reset_index(drop=True)

    def summary(self) -> str:
        f = self.frame
        lines = [f"AlignmentResult: {f['ablation'].nunique()} ablations x {f['readout'].nunique()} read-out(s), "
                 f"{self.attrs.get('measure', 'similarity')} vs {self.attrs.get('recording', 'recording')}; "
                 f"{int((f['significant'] & (f['delta'] < 0)).sum())} lower it, "
                 f"{int((f['significant'] & (f['delta'] > 0)).sum())} raise it ({int(100 * self.attrs.get('level', 0.95))}% CI)"]
        for row in self.rank().head(5).itertuples():
            lines.append(f"  {row.ablation} -> {row.readout}: {row.intact:.3f} -> {row.ablated:.3f} "
                         f"(delta {row.delta:+.3f} [{row.low:+.3f}, {row.high:+.3f}])")
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """Change of similarity per ablation with its CI (significant drops in the accent colour)."""
        import plotly.graph_objects as go

        fig = go.Figure()
        for readout, f in self.frame.groupby("readout", sort=False):
            fig.add_trace(go.Bar(
                x=f["delta"], y=f["ablation"], orientation="h", name=f"read out at {readout}",
                marker_color=np.where(f["significant"] & (f["delta"] < 0), "#e4572e", "#9bb7e8").tolist(),
                error_x=dict(type="data", symmetric=False, array=f["high"] - f["delta"], arrayminus=f["delta"] - f["low"])))
        fig.add_vline(x=0, line_color="gray")
        fig.update_layout(xaxis_title=f"change of {self.attrs.get('measure', 'similarity')} (ablated - intact)",
                          yaxis=dict(autorange="reversed"), height=max(300, 22 * self.frame["ablation"].nunique() + 120))
        return themed(fig, title=kwargs.get("title", "Causal brain alignment: similarity lost by each ablation"))


# ------------------------------------------------------------------------------------------- analysis
def _recording_side(recording: Any, n: int, stimulus_ids: Sequence | None) -> tuple[Any, np.ndarray]:
    """The recording (RDM stack or patterns) and the model-row index of each of its stimuli."""
    from interp.similarity._backend import as_matrix

    rdms = rdms_from_recording(recording)
    if rdms is not None:
        ids = rdms.stimuli if rdms.stimuli != list(range(rdms.n_stimuli)) else None
        size, data = rdms.n_stimuli, rdms.data.to(torch.float64)
    else:
        data = as_matrix(recording, name="recording", device="cpu")
        frame = recording.coords.get("sample", pd.DataFrame()) if isinstance(recording, Activations) else pd.DataFrame()
        key = next((k for k in ("stimulus", "id") if k in frame.columns), None)
        ids, size = (frame[key].tolist() if key else None), data.shape[0]
    if stimulus_ids is None or ids is None:
        if size != n:
            raise MismatchError(f"{n} stimuli but the recording has {size}; pass stimulus_ids=... to match them by id")
        return data, np.arange(n)
    pos = {v: i for i, v in enumerate(stimulus_ids)}
    missing = [v for v in ids if v not in pos]
    if missing or len(ids) != n:
        raise MismatchError(f"stimuli do not line up: {len(missing)} recording stimuli have no model input "
                            f"{missing[:10]}; {n} inputs for {len(ids)} recording stimuli")
    return data, np.array([pos[v] for v in ids])


def _scores(base: str, option: str, conditions: list[torch.Tensor], data: Any, rdm_method: str, n_bootstraps: int,
            level: float, over: tuple, seed: int, names: list[str], readout: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(1 + A,)`` and paired bootstrap samples ``(B, 1 + A)`` of the intact and ablated read-outs."""
    if base == "rsa":
        stack = torch.stack([rdm(X, rdm_method) for X in conditions])
        vec = upper_tri(stack)
        bad = [names[i] for i in range(len(names)) if not torch.isfinite(vec[i]).all() or float(vec[i].std()) == 0]
        if bad:
            raise ConfigError(f"at read-out {readout!r} the {rdm_method} RDM is undefined or constant for {bad[:5]}: "
                              "the ablation removed every difference between stimuli (or between a pattern's units); "
                              "ablate fewer channels or read out elsewhere")
        comparator = canonical_method(option or "spearman")
        from interp.similarity.stats import rdm_scores

        est = rdm_scores(stack, data, comparator)
        if n_bootstraps == 0:
            return est, np.empty((0, len(names)))
        boot = rdm_bootstrap(stack, data, comparator, over=over, n_bootstraps=n_bootstraps, level=level, seed=seed)
        return est, boot.samples
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, data.shape[0], data.shape[0]) for _ in range(n_bootstraps)]
    if base == "encoding":
        from sklearn.model_selection import KFold

        from probes import encoding_scores, pearson_per_target

        folds = KFold(5, shuffle=True, random_state=seed)
        preds = [torch.as_tensor(encoding_scores(X, data, cv=folds, inner_cv=folds).predictions) for X in conditions]

        def fn(P: torch.Tensor, Y: torch.Tensor) -> float:
            return float(torch.nanmean(pearson_per_target(Y, P, constant="nan")))

        pairs = [(P, data) for P in preds]
    else:
        stat = pattern_statistic(f"{base}:{option}" if option else base)
        pairs, fn = [(X, data) for X in conditions], stat
    est = np.array([fn(a, b) for a, b in pairs])
    samples = np.array([[fn(a[torch.as_tensor(d)], b[torch.as_tensor(d)]) for a, b in pairs] for d in draws])
    return est, samples.reshape(n_bootstraps, len(pairs))


def brain_alignment(model: nn.Module, stimuli: Any, recording: Any, ablations: Mapping[str, Any] | Ablation,
                    readout: str | Sequence[str], *, method: str = "rsa", rdm_method: str = "correlation",
                    preprocess: Any = None, stimulus_ids: Sequence | None = None, spatial: str = "all",
                    batch_size: int = 32, n_bootstraps: int = 1000, level: float = 0.95, bootstrap_subjects: bool = False,
                    seed: int = 0, replay: bool = True, progress: bool = True, model_name: str | None = None
                    ) -> AlignmentResult:
    """Similarity of the model's read-out with the recording, intact and under each ablation.

    Parameters
    ----------
    model: an ``nn.Module`` (module paths) or ``TransformerBridge`` (hook names).
    stimuli: the model inputs (preprocessed together by ``preprocess`` when given; texts for a bridge).
    recording: RDMs (``RDMs``, an RDM-stack ``Activations`` such as ``k92.rdms.sel(...)``, ``(k, n, n)``) or
        response patterns (``Activations``/array, samples x units), as :func:`interp.compare` takes.
    ablations: ``{name: Ablation | Intervention | [Intervention, ...]}`` (or one :class:`Ablation`).
    readout: the site(s) whose activations are compared with the recording (globs allowed).
    method: ``"rsa[:comparator]"`` (default Spearman), ``"cka[:estimator]"`` (patterns), or ``"encoding"`` (patterns:
        mean held-out Pearson r of a ridge model over the recording's units; bootstrap over its out-of-fold
        predictions).
    spatial: ``"all"`` (flatten conv maps / positions, as :func:`interp.compare`) or ``"mean"`` over them.
    n_bootstraps, level, bootstrap_subjects: paired stimulus bootstrap (and subjects, for RDM stacks).
    replay: replay the blocks before the first ablated one (checked; see the module docstring).
    """
    base, _, option = method.partition(":")
    if base not in ("rsa", "cka", "encoding"):
        raise ConfigError(f"method must be 'rsa[:comparator]', 'cka[:estimator]' or 'encoding', got {method!r}")
    if isinstance(ablations, Ablation):
        ablations = {"ablation": ablations}
    if not isinstance(ablations, Mapping) or not ablations:
        raise InputTypeError("ablations must be a non-empty {name: Ablation or Intervention(s)} mapping")
    specs_in: dict[str, Any] = {}
    for name, value in ablations.items():
        if isinstance(value, Ablation):
            value.site = engine.resolve_site(model, value.site)
        elif isinstance(value, Intervention) or (isinstance(value, (list, tuple)) and value and
                                                 all(isinstance(v, Intervention) for v in value)):
            value = [value] if isinstance(value, Intervention) else list(value)
            for v in value:
                v.site = engine.resolve_site(model, v.site)
        else:
            raise InputTypeError(f"ablation {name!r} must be an Ablation or Intervention(s), got {type(value).__name__}")
        specs_in[str(name)] = value
    readouts = expand_sites(model, readout)
    inputs = preprocess(stimuli) if preprocess is not None else stimuli
    inputs = engine.to_tokens(model, inputs) if engine.is_bridge(model) else inputs
    if not isinstance(inputs, torch.Tensor):
        inputs = torch.as_tensor(np.asarray(inputs))
    n = int(inputs.shape[0])
    data, order = _recording_side(recording, n, stimulus_ids)
    if base != "rsa" and data.ndim == 3:
        raise ConfigError("the recording is a stack of RDMs, which supports method='rsa[:comparator]' only")
    abl_sites = {v.site for v in specs_in.values() if isinstance(v, Ablation)}
    decs: dict[str, list] = {}
    for v in specs_in.values():
        if isinstance(v, Ablation) and v.latents is not None and v.kind == "mean":
            decs.setdefault(v.site, []).append(v.decomposition)
    runner = _Runner(model, inputs, batch_size, readouts, spatial)
    was_training = model.training
    model.eval()
    try:
        intact, stats = runner.intact(specs_in, sorted(abl_sites), decs, progress)
        bridge = engine.is_bridge(model)
        specs = {k: _interventions(v, stats[v.site], bridge) if isinstance(v, Ablation) else v
                 for k, v in specs_in.items()}
        sites_of = {k: [s.site for s in v] for k, v in specs.items()}
        if replay:
            runner.replay = True
            best = max(runner.upto(s) for s in sites_of.values())
            runner.replay = False
            runner.check_replay(intact, best)
        ablated = {k: runner.run(v, runner.upto(sites_of[k]))
                   for k, v in tqdm(specs.items(), disable=not progress, desc="ablations")}
    finally:
        model.train(was_training)
    names = ["intact", *specs]
    over = ("stimuli", "subjects") if bootstrap_subjects and data.ndim == 3 and data.shape[0] >= 2 else ("stimuli",)
    rows, samples = [], {}
    for r in readouts:
        conditions = [intact[r][order], *[ablated[k][r][order] for k in specs]]
        est, boot = _scores(base, option, conditions, data, rdm_method, n_bootstraps, level, over, seed, names, r)
        samples[r] = boot
        for j, name in enumerate(specs, start=1):
            d = boot[:, j] - boot[:, 0] if len(boot) else np.empty(0)
            low, high = percentile_interval(d, 1 - level) if len(d) else (np.nan, np.nan)
            p = float(p_value(0.0, d, "two-sided")) if len(d) else np.nan  # is 0 inside the bootstrap distribution?
            v = specs_in[name]
            rows.append({"readout": r, "ablation": name, "site": v.site if isinstance(v, Ablation) else v[0].site,
                         "kind": v.kind if isinstance(v, Ablation) else v[0].kind, "intact": est[0],
                         "ablated": est[j], "delta": est[j] - est[0], "low": float(low), "high": float(high),
                         "p_value": p, "significant": bool(low > 0 or high < 0)})
    measure = f"RSA ({canonical_method(option or 'spearman')})" if base == "rsa" else method
    attrs = {"method": method, "measure": measure, "rdm_method": rdm_method, "n_bootstraps": n_bootstraps,
             "level": level, "over": "+".join(over), "seed": seed, "replay": runner.replay, "spatial": spatial,
             "model": model_name or type(model).__name__, "recording": _name_of(recording), "n_stimuli": n}
    return AlignmentResult(pd.DataFrame(rows), samples, attrs)


def _name_of(recording: Any) -> str:
    return str(recording.attrs.get("source", "recording")) if isinstance(recording, Activations) else "recording"


def k92_it_alignment(*, model: nn.Module | None = None, preprocess: Any = None, readout: str | None = None,
                     top_blocks: int = 2, n_groups: int = 4, n_bootstraps: int = 500, seed: int = 0, quick: bool = False,
                     progress: bool = False) -> dict[str, AlignmentResult]:
    """Which ``efficientnet-lite0`` blocks and channel groups carry its similarity to human IT (Kriegeskorte
    et al. 2008, 92 images, 4 subjects x 2 sessions, RSA with Spearman over the 8 RDMs)?

    The read-out is ``readout`` or the block most similar to human IT. ``"blocks"``: for every block up to the
    read-out, a random half of its expanded (depthwise) channels is mean-ablated; ``"channels"``: the expanded
    channels of the ``top_blocks`` blocks whose half-ablation lowered the similarity most are split into
    ``n_groups`` contiguous groups, each mean-ablated. ``quick``: the last four blocks only, 4 groups, 100 bootstraps.

    Parameters
    ----------
    model : torch.nn.Module, optional
        An ``efficientnet-lite0`` (default: loaded from the zoo, with its ``preprocess``).
    preprocess : Callable, optional
        Image preprocessing for ``model`` (the zoo's when ``model`` is left out).
    readout : str, optional
        The read-out block (``"_blocks.15"``); default the block most similar to human IT.
    top_blocks : int
        How many blocks' channels are split into groups.
    n_groups : int
        Channel groups per block (at most 4 with ``quick``).
    n_bootstraps : int
        Bootstrap resamples of the stimuli (at most 100 with ``quick``).
    seed : int
        Seed of the bootstrap and of the random half-ablations.
    quick : bool
        The last four blocks only, 4 groups, 100 bootstraps.
    progress : bool
        Show progress bars.

    Returns
    -------
    dict[str, AlignmentResult]
        ``{"blocks": ..., "channels": ...}``.

    >>> out = k92_it_alignment(quick=True)                                    # doctest: +SKIP
    >>> out["blocks"].rank().head(), out["channels"].plot()                   # doctest: +SKIP
    """
    import interp

    k92 = interp.data.load("kriegeskorte92")
    human = k92.rdms.sel(name="human_IT_s*")
    if model is None:
        model, preprocess = interp.models.load("efficientnet-lite0")
    images, ids = list(k92.images), k92.stimuli["stimulus"].tolist()
    if quick:
        n_groups, n_bootstraps = min(n_groups, 4), min(n_bootstraps, 100)
    if readout is None:
        profile = interp.compare(model, images, human, sites="_blocks.*", preprocess=preprocess, n_bootstraps=0,
                                 progress=progress, stimulus_ids=ids)
        readout = str(profile.best()["site"])
    last = int(readout.split(".")[1])
    first = max(0, last - 3) if quick else 0
    kw = dict(preprocess=preprocess, stimulus_ids=ids, n_bootstraps=n_bootstraps, seed=seed, progress=progress,
              model_name="efficientnet-lite0")
    halves = {f"_blocks.{i}": Ablation(f"_blocks.{i}._depthwise_act", "mean", channel_group=(0, 2), grouping="random", seed=seed)
              for i in range(first, last + 1)}
    blocks = brain_alignment(model, images, human, halves, readout, **kw)
    top = blocks.rank()["ablation"].head(top_blocks).tolist()
    groups = channel_groups(model, [f"{b}._depthwise_act" for b in top], n_groups)
    channels = brain_alignment(model, images, human, groups, readout, **kw)
    return {"blocks": blocks, "channels": channels}
