"""The model-vs-brain pipeline: :func:`compare` scores every site (layer, block, stage) of a model
against a recording and returns a layer-by-layer :class:`SimilarityProfile` with bootstrap CIs and the
noise ceiling.

>>> import interp                                                          # doctest: +SKIP
>>> k92 = interp.data.load("kriegeskorte92")                               # doctest: +SKIP
>>> model, prep = interp.models.load("efficientnet-lite0")                 # doctest: +SKIP
>>> prof = interp.compare(model, k92.images, k92.rdms.sel(name="human_IT_s*"),
...                       sites="blocks.*", preprocess=prep, method="rsa:spearman")  # doctest: +SKIP
>>> prof.plot()                                                            # doctest: +SKIP

Recordings are either a stack of RDMs (one per subject/session: :class:`~interp.similarity.rdm.RDMs`,
an ``Activations`` with dims ``("rdm", "stimulus", "stimulus2")`` as ``interp.data.load("kriegeskorte92")``
returns, or an ``(k, n, n)`` array) or response patterns (``Activations`` samples x units, with a
``stimulus`` sample coordinate). Stimuli are matched by id; ids present on one side only raise
:class:`~interp.errors.MismatchError` listing them.

Methods: ``"rsa"`` / ``"rsa:<comparator>"`` (default comparator spearman; RDMs of the model computed
with ``rdm_method``), and for pattern recordings also ``"cka"`` / ``"cka:<estimator>"``, ``"rbf_cka"``,
``"cca"``, ``"svcca"``, ``"pwcca"``, ``"procrustes"`` (NBS = cos of the angular shape distance).
RSA scores are the mean over data RDMs of the comparator (rsatoolbox's ``eval_fixed``); the noise
ceiling is rsatoolbox's lower/upper bound over the data RDMs. Bootstrap resamples are shared by all
sites and are reproducible from ``seed``, so two profiles computed with the same seed on the same
stimuli are paired (see :meth:`SimilarityProfile.difference`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp._progress import tqdm

from ..errors import ConfigError, InputTypeError, MismatchError
from ..stats import bootstrap_indices, null_indices, p_value, percentile_interval, resolve_groups
from ..tensor import Activations
from ._backend import as_matrix
from .ceiling import rsa_noise_ceiling
from .profile import SimilarityProfile, SimilarityProfiles
from .rdm import RDMs, rdm, upper_tri
from .rsa import canonical_method, compare_vectors
from .stats import pattern_statistic, rdm_bootstrap

__all__ = ["compare", "SimilarityProfile", "SimilarityProfiles", "rdms_from_recording", "random_weights", "expand_sites"]


# ------------------------------------------------------------------------------------------ inputs
def rdms_from_recording(recording: Any) -> RDMs | None:
    """The recording as :class:`RDMs` if it is a stack of RDMs, else None (patterns).

    Parameters
    ----------
    recording : Any
        A recording: a stack of RDMs, or patterns.
    """
    if isinstance(recording, RDMs):
        return recording
    if isinstance(recording, Activations):
        if "rdm" in recording.dims and recording.data.ndim == 3:
            stim_dim = [d for d in recording.dims if d != "rdm"][0]
            frame = recording.coords.get(stim_dim, pd.DataFrame())
            stimuli = frame["stimulus"].tolist() if "stimulus" in frame.columns else []
            data = recording.transpose("rdm", *[d for d in recording.dims if d != "rdm"]).data
            return RDMs(data, stimuli, recording.coords["rdm"], recording.attrs.get("units", "unknown"))
        if recording.data.ndim == 2 and recording.shape[0] == recording.shape[1] and "sample" not in recording.dims:
            return RDMs(recording.data[None])
        return None
    if isinstance(recording, (np.ndarray, torch.Tensor)):
        arr = recording
        if arr.ndim == 3 or (arr.ndim == 2 and arr.shape[0] == arr.shape[1] and _is_rdm_like(arr)):
            return RDMs(torch.as_tensor(np.asarray(arr.cpu() if isinstance(arr, torch.Tensor) else arr)))
        return None
    raise InputTypeError(f"recording must be Activations, RDMs or an array, got {type(recording).__name__}")


def _is_rdm_like(arr: Any) -> bool:
    a = np.asarray(arr.cpu() if isinstance(arr, torch.Tensor) else arr, dtype=float)
    return bool(np.allclose(a, a.T) and np.allclose(np.diag(a), 0))


def _recording_stimuli(recording: Any, rdms: RDMs | None) -> list | None:
    if rdms is not None:
        named = rdms.stimuli != list(range(rdms.n_stimuli))
        return rdms.stimuli if named else None
    if isinstance(recording, Activations):
        frame = recording.coords.get("sample", pd.DataFrame())
        for key in ("stimulus", "id"):
            if key in frame.columns:
                return frame[key].tolist()
    return None


def _model_activations(model: Any, stimuli: Any, sites: Any, stimulus_ids: Sequence | None, *, preprocess: Any,
                       batch_size: int, spatial: str, progress: bool) -> dict[str, Activations]:
    if isinstance(model, Activations):
        return {model.attrs.get("site", "model"): model}
    if isinstance(model, Mapping):
        bad = [k for k, v in model.items() if not isinstance(v, (Activations, torch.Tensor, np.ndarray))]
        if bad:
            raise InputTypeError(f"precomputed activations must be Activations/tensors; sites {bad} are not")
        out = {}
        for k, v in model.items():
            if not isinstance(v, Activations):
                t = torch.as_tensor(np.asarray(v)) if isinstance(v, np.ndarray) else v
                v = Activations(t.reshape(t.shape[0], -1), ("sample", "unit"))
            out[k] = v
        return out
    if not isinstance(model, torch.nn.Module):
        raise InputTypeError(f"model must be an nn.Module, a TransformerBridge, Activations or {{site: Activations}}; "
                             f"got {type(model).__name__}")
    if sites is None:
        raise ConfigError("pass sites=... (module paths or hook names, globs allowed) to capture from the model")
    from ..capture import capture

    sites = expand_sites(model, sites)
    out = capture(model, stimuli, sites, batch_size=batch_size, spatial=spatial, preprocess=preprocess,
                  sample_ids=list(stimulus_ids) if stimulus_ids is not None else None, progress=progress)
    if isinstance(out, Activations):
        name = sites if isinstance(sites, str) else sites[0]
        return {name: out}
    return dict(out)


def expand_sites(model: torch.nn.Module, sites: str | Sequence[str]) -> list[str]:
    """Expand globs (``"_blocks.*"`` gives ``_blocks.0``, ``_blocks.1``, ... but not their submodules);
    the rule lives in :func:`interp.engine.resolve_sites`.

    Parameters
    ----------
    model : torch.nn.Module
        The model whose module paths the globs match.
    sites : str or Sequence[str]
        Module paths and globs.
    """
    from ..engine import resolve_sites

    return resolve_sites(model, sites)


def _sample_ids(acts: Activations) -> list | None:
    frame = acts.coords.get("sample", pd.DataFrame())
    for key in ("stimulus", "id"):
        if key in frame.columns:
            return frame[key].tolist()
    return None


def _align_rows(acts: Activations, target: list | None, n_target: int, site: str) -> torch.Tensor:
    """Rows of ``acts`` reordered to ``target`` stimulus ids (MismatchError listing unmatched ids)."""
    X = acts.data.reshape(acts.shape[0], -1) if "sample" not in acts.dims else acts.matrix("sample")
    ids = _sample_ids(acts)
    if target is None or ids is None:
        if X.shape[0] != n_target:
            raise MismatchError(f"site {site!r} has {X.shape[0]} stimuli but the recording has {n_target}, and no "
                                "stimulus ids to match them by; pass stimulus_ids=...")
        return X
    pos = {v: i for i, v in enumerate(ids)}
    only_recording = [t for t in target if t not in pos]
    only_model = [v for v in ids if v not in set(target)]
    if only_recording or only_model:
        raise MismatchError(f"stimuli do not line up between model and recording: {len(only_recording)} only in the "
                            f"recording {only_recording[:10]}, {len(only_model)} only in the model stimuli "
                            f"{only_model[:10]}")
    return X[torch.as_tensor([pos[t] for t in target], device=X.device)]


# ------------------------------------------------------------------------------------------ pipeline
def compare(model: Any, stimuli: Any, recording: Any, sites: str | Sequence[str] | None = None, method: str = "rsa",
            *, rdm_method: str = "correlation", stimulus_ids: Sequence | None = None, preprocess: Any = None,
            n_bootstraps: int = 1000, level: float = 0.95, bootstrap_subjects: bool = True, n_permutations: int = 0,
            groups: Any = None, seed: int = 0, nan_policy: str = "raise", batch_size: int = 16, spatial: str = "all",
            dtype: torch.dtype | str | None = None, device: str | torch.device | None = None,
            progress: bool = True, model_name: str | None = None, recording_name: str | None = None
            ) -> SimilarityProfile:
    """Layer-by-layer similarity of ``model`` with ``recording`` on ``stimuli``.

    Parameters
    ----------
    model: an ``nn.Module`` / ``TransformerBridge`` (captured with :func:`interp.capture` at ``sites``),
        or precomputed activations (``Activations`` or ``{site: Activations}``).
    stimuli: the model inputs (images, token tensors, texts); ignored for precomputed activations.
    recording: RDM stack or response patterns (see the module docstring).
    sites: module paths or hook names (globs allowed) to capture.
    method: ``"rsa[:comparator]"``, ``"cka[:estimator]"``, ``"rbf_cka"``, ``"cca"``, ``"svcca"``, ``"pwcca"``,
        ``"procrustes"``.
    rdm_method: dissimilarity for model (and pattern-recording) RDMs: ``"correlation"`` (default, as the
        Kriegeskorte 2008 RDMs), ``"euclidean"``, ``"cosine"``.
    stimulus_ids: one id per stimulus, matched to the recording's stimulus ids (default: the
        recording's order, which requires the same number of stimuli).
    n_bootstraps, level: bootstrap resamples and CI level (0 disables the bootstrap).
    bootstrap_subjects: for RDM stacks with >= 2 RDMs, resample subjects as well as stimuli.
    n_permutations: stimulus-label permutations for a p-value per site (0: none).
    groups: one label per stimulus (e.g. the trial or session it came from) or a sample-coordinate name of
        the recording: the bootstrap resamples and the permutations swap whole groups.
    nan_policy: ``"raise"`` or ``"drop"`` (drop recording units/voxels and model units holding NaN).
    """
    base, _, option = method.partition(":")
    if base not in ("rsa", "cka", "rbf_cka", "cca", "svcca", "pwcca", "procrustes"):
        raise ConfigError(f"unknown method {method!r}; use 'rsa[:comparator]', 'cka[:estimator]', 'rbf_cka', "
                          "'cca', 'svcca', 'pwcca' or 'procrustes'")
    rdms = rdms_from_recording(recording)
    if rdms is not None and base != "rsa":
        raise ConfigError(f"the recording is a stack of RDMs, which supports only method='rsa[:comparator]', "
                          f"not {method!r}; pass response patterns for {base}")
    target = _recording_stimuli(recording, rdms)
    n_target = rdms.n_stimuli if rdms is not None else as_matrix(recording, name="recording",
                                                                 nan_policy=nan_policy).shape[0]
    if stimulus_ids is None and target is not None and not isinstance(model, (Mapping, Activations)):
        if len(stimuli) != len(target):
            raise MismatchError(f"{len(stimuli)} stimuli but the recording has {len(target)}; pass stimulus_ids=...")
        stimulus_ids = target
    acts = _model_activations(model, stimuli, sites, stimulus_ids, preprocess=preprocess, batch_size=batch_size,
                              spatial=spatial, progress=progress)
    site_names = list(acts)
    rows = {s: _align_rows(a, target, n_target, s) for s, a in acts.items()}
    mats = {s: as_matrix(x, name=f"site {s}", dtype=dtype, device=device, nan_policy=nan_policy)
            for s, x in rows.items()}
    rng_seed = seed
    codes = resolve_groups(groups, n_target, recording if isinstance(recording, Activations) else None)
    attrs: dict[str, Any] = {
        "method": method, "measure": method if base != "rsa" else f"RSA ({canonical_method(option or 'spearman')})",
        "rdm_method": rdm_method if base == "rsa" else None, "n_bootstraps": n_bootstraps, "level": level, "seed": seed,
        "stimuli": tuple(target) if target is not None else n_target, "n_stimuli": n_target,
        "model": model_name or type(model).__name__, "recording": recording_name or _recording_name(recording),
    }
    if base == "rsa":
        comparator = canonical_method(option or "spearman")
        if rdms is None:
            Y = as_matrix(recording, name="recording", dtype=dtype, device=device, nan_policy=nan_policy)
            rdms = RDMs(rdm(Y, rdm_method)[None], target or [], method=rdm_method)
        data = rdms.data.to(torch.float64)
        model_rdms = torch.stack([rdm(mats[s], rdm_method).to(torch.float64).cpu() for s in site_names])
        data = data.cpu()
        scores = compare_vectors(upper_tri(model_rdms), upper_tri(data), comparator).mean(1).numpy()
        over = ("stimuli", "subjects") if bootstrap_subjects and len(rdms) >= 2 else ("stimuli",)
        attrs["over"] = "+".join(over)
        if n_bootstraps > 0:
            boot = rdm_bootstrap(model_rdms, data, comparator, over=over, n_bootstraps=n_bootstraps, level=level, seed=rng_seed,
                                 groups=codes, progress=progress)
            samples = boot.samples
        else:
            samples = np.empty((0, len(site_names)))
        ceiling = rsa_noise_ceiling(data, comparator) if len(rdms) >= 2 else None
        pvals = _rdm_permutation_pvalues(model_rdms, data, comparator, scores, n_permutations, seed, codes, progress)
        attrs["comparator"] = comparator
    else:
        Y = as_matrix(recording, name="recording", dtype=dtype, device=device, nan_policy=nan_policy)
        scores, samples = _pattern_scores(mats, Y, base, option, n_bootstraps, rng_seed, codes, progress)
        attrs["over"] = "stimuli"
        ceiling = None
        pvals = _pattern_permutation_pvalues(mats, Y, base, option, scores, n_permutations, seed, codes, progress)
    low, high = (percentile_interval(samples, 1 - level) if len(samples) else (np.full(len(scores), np.nan),) * 2)
    frame = pd.DataFrame({"site": site_names, "depth": np.arange(len(site_names)), "score": scores, "low": low,
                          "high": high, "p_value": pvals, "n_features": [mats[s].shape[1] for s in site_names]})
    return SimilarityProfile(frame, ceiling, samples, attrs)


def _recording_name(recording: Any) -> str:
    if isinstance(recording, Activations):
        return str(recording.attrs.get("source", "recording"))
    return "recording"


def _permutations(n: int, n_permutations: int, seed: int, codes: np.ndarray | None) -> np.ndarray:
    """Stimulus permutations (whole groups with ``codes``), drawn from ``seed + 1`` (the bootstrap uses ``seed``)."""
    return null_indices(n, "permutation" if codes is None else "group", groups=codes, n_permutations=n_permutations,
                        seed=seed + 1)


def _rdm_permutation_pvalues(model_rdms: torch.Tensor, data: torch.Tensor, comparator: str, scores: np.ndarray,
                             n_permutations: int, seed: int, codes: np.ndarray | None, progress: bool) -> np.ndarray:
    if n_permutations <= 0:
        return np.full(len(scores), np.nan)
    idx = _permutations(model_rdms.shape[-1], n_permutations, seed, codes)
    vd = upper_tri(data)
    null = np.empty((n_permutations, len(scores)))
    for k in tqdm(range(n_permutations), disable=not progress, desc="permutations"):
        p = torch.as_tensor(idx[k])
        null[k] = compare_vectors(upper_tri(model_rdms[:, p][:, :, p]), vd, comparator).mean(1).numpy()
    return p_value(scores, null)


def _gram(X: torch.Tensor) -> torch.Tensor:
    Xc = X - X.mean(0, keepdim=True)
    return Xc @ Xc.T


def _cka_from_grams(K: torch.Tensor, L: torch.Tensor, estimator: str) -> float:
    from .cka import hsic

    if estimator == "biased":
        xy, xx, yy = hsic(K, L, "biased"), hsic(K, K, "biased"), hsic(L, L, "biased")
    else:
        xy, xx, yy = hsic(K, L, estimator), hsic(K, K, estimator), hsic(L, L, estimator)
    if float(xx) <= 0 or float(yy) <= 0:
        return float("nan")
    return float(xy / torch.sqrt(xx * yy))


def _pattern_scores(mats: dict[str, torch.Tensor], Y: torch.Tensor, base: str, option: str, n_bootstraps: int, seed: int,
                    codes: np.ndarray | None, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    n = Y.shape[0]
    draws = list(bootstrap_indices(n, n_bootstraps, seed, groups=codes)) if n_bootstraps > 0 else []
    scores, samples = [], np.empty((n_bootstraps, len(mats)))
    if base == "cka":  # linear CKA from Gram matrices: each bootstrap is O(n^2)
        estimator = option or "biased"
        L = _gram(Y.to(torch.float64))
        for j, X in enumerate(mats.values()):
            K = _gram(X.to(device=Y.device, dtype=torch.float64))
            scores.append(_cka_from_grams(K, L, estimator))
            for b, idx in enumerate(draws):
                t = torch.as_tensor(idx, device=K.device)
                samples[b, j] = _cka_from_grams(_centre_gram(K[t][:, t]), _centre_gram(L[t][:, t]), estimator)
        return np.asarray(scores), samples
    fn = pattern_statistic(f"{base}:{option}" if option else base)
    for j, X in enumerate(tqdm(list(mats.values()), disable=not progress, desc="sites")):
        X = X.to(device=Y.device)
        scores.append(float(fn(X, Y)))
        for b, idx in enumerate(draws):
            t = torch.as_tensor(idx, device=X.device)
            samples[b, j] = float(fn(X[t], Y[t]))
    return np.asarray(scores), samples


def _centre_gram(K: torch.Tensor) -> torch.Tensor:
    return K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()


def _pattern_permutation_pvalues(mats: dict[str, torch.Tensor], Y: torch.Tensor, base: str, option: str,
                                 scores: np.ndarray, n_permutations: int, seed: int, codes: np.ndarray | None,
                                 progress: bool) -> np.ndarray:
    if n_permutations <= 0:
        return np.full(len(scores), np.nan)
    idx = _permutations(Y.shape[0], n_permutations, seed, codes)
    fn = pattern_statistic(f"{base}:{option}" if option else base)
    null = np.empty((n_permutations, len(scores)))
    for k in tqdm(range(n_permutations), disable=not progress, desc="permutations"):
        p = torch.as_tensor(idx[k], device=Y.device)
        null[k] = [float(fn(X.to(Y.device), Y[p])) for X in mats.values()]
    return p_value(scores, null)


def random_weights(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A copy of ``model`` with every parameter re-initialised (each module's ``reset_parameters``, under
    ``torch.manual_seed(seed)``): the same architecture with random weights, the usual control for
    "does training matter?". Modules without ``reset_parameters`` keep their (parameter-free) state.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model (it is not modified).
    seed : int
        The seed of the re-initialisation.
    """
    import copy

    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        n_reset = 0
        for module in clone.modules():
            if hasattr(module, "reset_parameters") and callable(module.reset_parameters):
                module.reset_parameters()
                n_reset += 1
    if n_reset == 0 and any(True for _ in clone.parameters()):
        raise ConfigError("no module of this model has reset_parameters(); cannot build a random-weight copy")
    return clone.eval()

