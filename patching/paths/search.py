"""Path search: layer-progressive Joint Attribution Score search and its baselines.

Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025 (arXiv 2503.09046,
code github.com/foundation-model-research/NeuronPath at commit 5f93d0b, ``path/joint_attr.py``; the baselines
``base_path`` and ``path/influence_pattern.py``). The JAS paths equal ``joint_attr.py``'s and
``method="mean_gradient"`` the influence pattern of ``influence_pattern.py`` (tests/test_paths*.py). Where it
differs: the m interpolation steps run as one batched pass (``ig_batch=1`` is their loop); any site list and
token position (language models too), not only ViT CLS neurons; ``method="influence"`` is our own reading of
the paper's Algorithm 2, not their code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from interp import engine
from interp.errors import ConfigError, DimensionError, closest

from ..integrated_gradients import path_points
from .baselines import influence_search, mean_gradient_paths
from .results import NeuronPaths
from .runner import Edit, SiteRunner, batches, mlp_sites, neuron_mask, target_prob, targets_of

__all__ = ["METHODS", "ALL_METHODS", "find_paths", "joint_attribution_score"]

#: methods that :func:`compare_paths` compares by default: ours, and the authors' baselines (the
#: argmax-activation path and the influence pattern as their ``path/influence_pattern.py`` computes it,
#: ``"mean_gradient"``), plus random paths
METHODS = ("jas", "activation", "mean_gradient", "random")
#: every method :func:`find_paths` accepts: ``"influence"`` is our chain-rule reading of Algorithm 2 of the
#: paper (not what the authors' code runs; a much weaker baseline on digits-vit)
ALL_METHODS = METHODS + ("influence",)


def _joint_ig(
    runner: SiteRunner,
    inputs: Any,
    targets: torch.Tensor,
    values: Callable[[torch.Tensor], dict[int, torch.Tensor]],
    steps: int,
    ig_batch: int | None,
) -> dict[int, torch.Tensor]:
    """Sum over the m Riemann steps (alpha = k/m, k = 0..m-1) of dP(target)/d(replaced site values).

    ``values(alpha)`` maps alpha of shape (r,) to {site index: (r, B, d) replacement values}. Runs
    ceil(m / ig_batch) forward+backward passes, each on r*B rows (steps major). Returns {site: (B, d)}.
    """
    b = len(targets)
    chunk = steps if ig_batch is None else max(1, min(int(ig_batch), steps))
    alphas = path_points(steps, "riemann_left")[0].float()  # k/m, k = 0..m-1, as the reference code
    total: dict[int, torch.Tensor] = {}
    for start in range(0, steps, chunk):
        a = alphas[start : start + chunk]
        r = len(a)
        vals = values(a)
        leaves = {k: v.reshape(r * b, -1).detach().requires_grad_(True) for k, v in vals.items()}
        edits = {k: _constant(leaf) for k, leaf in leaves.items()}
        logits = runner.logits(engine.repeat(inputs, r), edits)
        prob = target_prob(logits, targets.repeat(r)).sum()
        keys = list(leaves)
        grads = torch.autograd.grad(prob, [leaves[k] for k in keys], allow_unused=True)
        runner.counter.backward += 1
        for k, g in zip(keys, grads):
            g = torch.zeros_like(leaves[k]) if g is None else g
            g = g.detach().view(r, b, -1).sum(0)
            total[k] = g if k not in total else total[k] + g
    return total


def _constant(value: torch.Tensor) -> Edit:
    return lambda vec: value


def _scaled_where(mask: torch.Tensor, scale: float) -> Edit:
    return lambda vec: torch.where(mask, vec * scale, vec)


def _path_values(h: list[torch.Tensor], path: Sequence[torch.Tensor], layers: Sequence[int]):
    """values(alpha) for the JAS baseline: clean activations, path neurons scaled by alpha."""
    masks = {k: neuron_mask(path[k], h[k].shape[1]) for k in layers}

    def values(a: torch.Tensor) -> dict[int, torch.Tensor]:
        a = a.to(h[0].device).view(-1, 1, 1)
        return {k: torch.where(masks[k], a * h[k].float(), h[k].float()) for k in layers}

    return values


def _path_sums(total: dict[int, torch.Tensor], h: list[torch.Tensor], path: Sequence[torch.Tensor], layers, steps):
    g = sum(total[k].gather(1, path[k]).sum(1) for k in layers)
    s = sum(h[k].float().gather(1, path[k]).sum(1) for k in layers) / steps
    return g, s



def _check_common(steps: int, top_k: int, method: str) -> None:
    if method not in ALL_METHODS:
        hint = closest(method, ALL_METHODS)
        raise ConfigError(f"unknown path method {method!r}; use one of {ALL_METHODS}"
                          + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    if int(steps) < 1:
        raise ConfigError(f"steps must be >= 1 (the paper uses 20); got {steps}")
    if int(top_k) < 1:
        raise ConfigError(f"top_k must be >= 1; got {top_k}")


def _jas_search(runner, inputs, targets, h, steps, top_k, ig_batch, progress) -> list[torch.Tensor]:
    path: list[torch.Tensor] = []
    n_layers = len(h)
    iterator = range(n_layers)
    if progress:
        from interp._progress import tqdm

        iterator = tqdm(iterator, desc="JAS path", leave=False)
    for li in iterator:
        prev = list(range(li))
        path_vals = _path_values(h, path, prev)
        cur = h[li].float()

        def values(a, path_vals=path_vals, cur=cur, li=li):
            vals = path_vals(a)
            vals[li] = a.to(cur.device).view(-1, 1, 1) * cur
            return vals

        total = _joint_ig(runner, inputs, targets, values, steps, ig_batch)
        if prev:
            g_path, s_path = _path_sums(total, h, path, prev, steps)
        else:
            g_path = s_path = torch.zeros(len(targets), device=cur.device)
        ja = (total[li] + g_path[:, None]) * (cur / steps + s_path[:, None])
        if top_k > ja.shape[1]:
            raise ConfigError(f"top_k={top_k} exceeds the {ja.shape[1]} neurons of site {runner.sites[li]!r}")
        path.append(torch.topk(ja, top_k, dim=1).indices)
    return path


def find_paths(
    model: Any,
    inputs: Any,
    targets: Any,
    sites: Sequence[str] | None = None,
    *,
    method: str = "jas",
    position: int | torch.Tensor | None = 0,
    steps: int = 20,
    top_k: int = 1,
    ig_batch: int | None = None,
    batch_size: int = 16,
    forward: Callable[[Any, Any], torch.Tensor] | None = None,
    input_site: str | None = None,
    seed: int = 0,
    score: bool = True,
    progress: bool = False,
) -> NeuronPaths:
    """Find one neuron path per sample (Wang et al. 2025, Algorithm 1) or a baseline path.

    Source: Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025 (arXiv
    2503.09046); code ``foundation-model-research/NeuronPath`` at commit 5f93d0b (``path/joint_attr.py``).
    Differences: the m interpolation steps run as one batched pass per layer (the same paths; ``ig_batch=1`` is
    their loop); ``method="influence"`` is our reading of Algorithm 2, not their code.

    Parameters
    ----------
    model : nn.Module or TransformerBridge
    inputs : tensor with samples on dim 0 (images, or token ids of equal length).
    targets : int or (n,) target class / token per sample.
    sites : one site per layer, in layer order (default :func:`mlp_sites`).
    method : "jas" (layer-progressive JAS search, the authors' ``path/joint_attr.py``), "activation"
        (argmax activation per layer, their ``base_path``), "mean_gradient" (the influence-pattern
        baseline as the authors' code computes it, ``path/influence_pattern.py``: per class, argmax of the
        step- and sample-averaged gradient, one path per class; the default baseline of
        :func:`compare_paths`), "influence" (our chain-rule reading of the paper's Algorithm 2, not the
        authors' code), "random" (uniformly random neurons). Code followed: NeuronPath commit 5f93d0b.
    position : token position of the neurons (0 = CLS of a ViT, -1 = last token of an LM); a (n,)
        tensor gives one position per sample. Logits of (batch, pos, vocab) outputs are read there too.
    steps : m, the number of Riemann steps (20 in the paper).
    top_k : neurons per layer (the paper's top-K variant when > 1).
    ig_batch : interpolation steps per forward pass; None = all m in one batched pass (default);
        1 = the straightforward per-step loop.
    batch_size : samples per search batch (the forward batch is batch_size * ig_batch rows).
    forward : optional ``forward(model, inputs) -> logits`` (default ``model(inputs)``).
    input_site : for ``method="influence"`` with token inputs: the site whose output is scaled from zero.
    score : also compute each path's JAS (one more forward/backward per batch).

    >>> paths = find_paths(vit, images, labels, position=0, steps=20)  # doctest: +SKIP
    >>> paths.indices.shape   # (n_images, n_layers, 1)
    """
    _check_common(steps, top_k, method)
    sites = mlp_sites(model) if sites is None else list(sites)
    runner = SiteRunner(model, sites, position, forward)
    n = engine.n_samples(inputs)
    if n == 0:
        raise DimensionError("no inputs: give at least one sample")
    gen = torch.Generator().manual_seed(int(seed))
    t0 = time.perf_counter()
    chunks: list[torch.Tensor] = []
    jas_chunks: list[torch.Tensor] = []
    all_targets: list[torch.Tensor] = []
    pos_all = position
    if isinstance(targets, np.ndarray):
        targets = targets.copy()  # it may be read-only (a column of a DataFrame)
    all_t = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if all_t.numel() == 1:
        all_t = all_t.repeat(n)
    if all_t.numel() != n:
        raise DimensionError(f"got {all_t.numel()} targets for {n} samples; give one target class per sample")
    by_class = (mean_gradient_paths(runner, inputs, all_t, steps, top_k, batch_size, input_site, pos_all)
                if method == "mean_gradient" else None)
    chunks_of = batches(inputs, batch_size)
    if progress and isinstance(inputs, (list, tuple)):
        from interp._progress import tqdm

        chunks_of = tqdm(chunks_of, total=n, desc=f"{method} paths")
    for sl, x in chunks_of:
        if isinstance(pos_all, torch.Tensor) and pos_all.ndim > 0:
            runner.position = pos_all.reshape(-1)[sl]
        h, logits = runner.capture(x)
        t = targets_of(all_t[sl], len(h[0]), logits.shape[-1]).to(logits.device)
        if method == "jas":
            path = _jas_search(runner, x, t, h, steps, top_k, ig_batch, progress)
        elif method == "activation":
            path = [torch.topk(hl.float(), top_k, dim=1).indices for hl in h]
        elif method == "influence":
            path = influence_search(runner, x, t, h, top_k, steps, input_site, progress)
        elif by_class is not None:
            path = [torch.stack([by_class[int(c)][li] for c in t.cpu()]).to(hl.device) for li, hl in enumerate(h)]
        else:
            path = [torch.stack([torch.randperm(hl.shape[1], generator=gen)[:top_k] for _ in range(len(hl))]).to(hl.device)
                    for hl in h]
        chunks.append(torch.stack(path, dim=1).cpu())
        all_targets.append(t.cpu())
        if score:
            jas_chunks.append(_jas_of(runner, x, t, h, path, steps, ig_batch).cpu())
    return NeuronPaths(
        indices=torch.cat(chunks),
        sites=sites,
        method=method,
        targets=torch.cat(all_targets),
        jas=torch.cat(jas_chunks) if score else None,
        steps=steps,
        passes=runner.counter,
        seconds=time.perf_counter() - t0,
    )


def _jas_of(runner, inputs, targets, h, path, steps, ig_batch) -> torch.Tensor:
    layers = list(range(len(h)))
    total = _joint_ig(runner, inputs, targets, _path_values(h, path, layers), steps, ig_batch)
    g, s = _path_sums(total, h, path, layers, steps)
    return g * s


def _as_path_list(paths: NeuronPaths | torch.Tensor, sl: slice | None = None) -> list[torch.Tensor]:
    idx = paths.indices if isinstance(paths, NeuronPaths) else torch.as_tensor(paths, dtype=torch.long)
    if idx.ndim == 2:
        idx = idx[:, :, None]
    if idx.ndim != 3:
        raise DimensionError(f"paths must be (n_samples, n_layers[, K]) neuron indices; got shape {tuple(idx.shape)}")
    if sl is not None:
        idx = idx[sl]
    return [idx[:, li, :] for li in range(idx.shape[1])]


def joint_attribution_score(
    model: Any,
    inputs: Any,
    targets: Any,
    paths: NeuronPaths | torch.Tensor,
    sites: Sequence[str] | None = None,
    *,
    position: int | torch.Tensor | None = 0,
    steps: int = 20,
    ig_batch: int | None = None,
    forward: Callable | None = None,
) -> torch.Tensor:
    """Joint Attribution Score (Wang et al. 2025) of each sample's path; returns a (n,) tensor.

    Source: Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025 (arXiv
    2503.09046); code ``foundation-model-research/NeuronPath`` at commit 5f93d0b (``path/joint_attr.py``).
    Differences: batched over the m steps (scores equal theirs within 5e-7).

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` or any ``nn.Module``.
    inputs : Any
        The samples on dim 0 (images, or token ids of equal length).
    targets : int or array_like
        The target class (or token) of each sample, ``(n,)``, or one for all.
    paths : NeuronPaths or torch.Tensor
        A :class:`NeuronPaths` or an ``(n, n_layers[, K])`` index tensor.
    sites : Sequence[str], optional
        One site per layer, in layer order (default the paths' sites, else :func:`mlp_sites`).
    position : int or torch.Tensor, optional
        Token position of the neurons (0 = CLS of a ViT, -1 = last token of an LM); an ``(n,)`` tensor gives
        one position per sample.
    steps : int
        m, the number of Riemann steps (20 in the paper).
    ig_batch : int, optional
        Interpolation steps per forward pass (default all m at once).
    forward : Callable, optional
        ``forward(model, inputs) -> logits`` (default ``model(inputs)``).
    """
    if isinstance(paths, NeuronPaths) and sites is None:
        sites = paths.sites
    sites = mlp_sites(model) if sites is None else list(sites)
    runner = SiteRunner(model, sites, position, forward)
    tt = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    scores = []
    for sl, x in batches(inputs, 16):
        if isinstance(position, torch.Tensor) and position.ndim > 0:
            runner.position = position.reshape(-1)[sl]
        h, logits = runner.capture(x)
        t = targets_of(tt[sl] if tt.numel() > 1 else tt, len(h[0]), logits.shape[-1]).to(logits.device)
        path = _validated(_as_path_list(paths, sl), h, sites)
        scores.append(_jas_of(runner, x, t, h, [p.to(h[0].device) for p in path], steps, ig_batch).cpu())
    return torch.cat(scores)


def _validated(path: list[torch.Tensor], h: list[torch.Tensor], sites) -> list[torch.Tensor]:
    if len(path) != len(h):
        raise DimensionError(f"paths have {len(path)} layers but {len(sites)} sites were given")
    for li, (p, hl) in enumerate(zip(path, h)):
        if p.shape[0] != hl.shape[0]:
            raise DimensionError(f"paths are for {p.shape[0]} samples but {hl.shape[0]} inputs were given")
        if (p < 0).any() or (p >= hl.shape[1]).any():
            raise ConfigError(f"neuron index out of range at site {sites[li]!r} ({hl.shape[1]} neurons)")
    return path


