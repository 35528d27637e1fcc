"""Path search: layer-progressive Joint Attribution Score search and its baselines.

Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025 (arXiv 2503.09046,
code github.com/foundation-model-research/NeuronPath, ``path/joint_attr.py``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from interp import engine
from interp.engine import Hook
from interp.errors import ConfigError, DimensionError, SiteError, closest

from ..integrated_gradients import path_points
from .results import NeuronPaths
from .runner import Edit, SiteRunner, batches, mlp_sites, neuron_mask, target_prob, targets_of

__all__ = ["METHODS", "ALL_METHODS", "find_paths", "joint_attribution_score"]

#: methods that :func:`compare_paths` compares by default
METHODS = ("jas", "activation", "influence", "random")
#: every method :func:`find_paths` accepts: ``"mean_gradient"`` is the influence-pattern baseline as the
#: authors' code computes it (``path/influence_pattern.py``)
ALL_METHODS = METHODS + ("mean_gradient",)


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
        from tqdm.auto import tqdm

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


def _influence_search(runner, inputs, targets, h, top_k, steps, input_site, progress) -> list[torch.Tensor]:
    """Greedy influence pattern (Lu et al. 2021; Wang et al. 2025 Alg. 2), batched over the m input steps.

    The input is scaled from zero (x_a = a x, a = (k+1)/m). The pattern's influence is the path integral
    of the chain of derivatives along the chosen neurons: c_1 = dh_1/da, c_l = c_{li-1} dh_l/dh_{li-1,p},
    score_l(j) = sum_a c_{li-1}(a) * dh_{li,j}/dh_{li-1,p}(a) * dP/dh_{li,j}(a). Derivatives of whole layers
    with respect to a scalar (forward-mode) use the double-backward trick.
    """
    b = len(targets)
    r = steps
    alphas = path_points(steps, "riemann_right")[0].float()  # (k+1)/m
    x_rep = engine.repeat(inputs, r)
    float_input = isinstance(inputs, torch.Tensor) and inputs.is_floating_point()
    if input_site is None and not float_input:
        if runner.bridge and "hook_embed" in runner.model.hook_dict:
            input_site = "hook_embed"
        else:
            raise ConfigError("the influence-pattern baseline scales the input from zero; for token inputs give "
                              "input_site= (a hook/module whose output is scaled, e.g. 'hook_embed')")
    path: list[torch.Tensor] = []
    chain = torch.ones(r * b, device=h[0].device)
    iterator = range(len(h))
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="influence path", leave=False)
    for li in iterator:
        d = h[li].shape[1]
        delta_l = torch.zeros(r * b, d, device=h[li].device, requires_grad=True)
        probe = torch.zeros(r * b, d, device=h[li].device, requires_grad=True)
        captured: dict[str, torch.Tensor] = {}
        if li == 0:
            source = alphas.to(h[0].device).repeat_interleave(b).requires_grad_(True)
        else:
            source = torch.zeros(r * b, device=h[li].device, requires_grad=True)

        def at_layer(vec, delta_l=delta_l, captured=captured):
            captured["h"] = vec
            return vec + delta_l

        edits: dict[int, Edit] = {li: at_layer}
        if li > 0:
            prev_mask = neuron_mask(path[li - 1], h[li - 1].shape[1]).repeat(r, 1).float()
            edits[li - 1] = lambda vec, source=source, m=prev_mask: vec + source[:, None] * m
        extra = contextlib.nullcontext()
        model_inputs = x_rep
        if li == 0:
            if input_site is None:
                shape = (-1,) + (1,) * (x_rep.ndim - 1)
                model_inputs = x_rep * source.view(shape)
            else:
                extra = _scale_site(runner, input_site, source)
        with extra, _math_attention():
            logits = runner.logits(model_inputs, edits)
        prob = target_prob(logits, targets.repeat(r)).sum()
        g_out = torch.autograd.grad(prob, delta_l, retain_graph=True)[0]
        hs = captured["h"]
        dsum = torch.autograd.grad((hs.float() * probe).sum(), source, create_graph=True)[0]
        jac = torch.autograd.grad(dsum.sum(), probe)[0]  # (r*b, d): dh_l / d source
        runner.counter.backward += 3
        score = (chain[:, None] * jac * g_out).view(r, b, d).sum(0)
        if top_k > d:
            raise ConfigError(f"top_k={top_k} exceeds the {d} neurons of site {runner.sites[li]!r}")
        chosen = torch.topk(score, top_k, dim=1).indices
        path.append(chosen)
        chain = chain * (jac.detach() * neuron_mask(chosen, d).repeat(r, 1)).sum(1)
        # keep the chain's scale bounded (the greedy choice only needs its sign and relative size)
        chain = chain / chain.abs().max().clamp_min(1e-30)
    return path


def _math_attention():
    """Fused attention kernels lack double backward; the math kernel has it (needed for the JVPs)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - old torch
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


@contextlib.contextmanager
def _scale_site(runner: SiteRunner, site: str, source: torch.Tensor):
    """Scale the whole output of ``site`` by the per-row factor ``source`` (input interpolation)."""

    def scale(act):
        return act * source.view((-1,) + (1,) * (act.ndim - 1)).to(act.dtype)

    try:
        site = engine.resolve_site(runner.model, site)
    except SiteError as exc:
        raise SiteError(f"input_site: {exc}") from None
    with engine.hooked(runner.model, [Hook(site, scale)]):
        yield


def _scaled_inputs(runner: SiteRunner, inputs: Any, alphas: torch.Tensor, input_site: str | None
                   ) -> tuple[Any, Any]:
    """Inputs scaled by each alpha (steps major) and the context that scales ``input_site`` instead."""
    b = engine.n_samples(inputs)
    x_rep = engine.repeat(inputs, len(alphas))
    source = alphas.repeat_interleave(b)
    if isinstance(inputs, torch.Tensor) and inputs.is_floating_point() and input_site is None:
        return x_rep * source.view((-1,) + (1,) * (x_rep.ndim - 1)).to(x_rep.dtype), contextlib.nullcontext()
    if input_site is None:
        if runner.bridge and "hook_embed" in runner.model.hook_dict:
            input_site = "hook_embed"
        else:
            raise ConfigError("this baseline scales the input from zero; for token inputs give input_site= (a "
                              "hook/module whose output is scaled, e.g. 'hook_embed')")
    return x_rep, _scale_site(runner, input_site, source)


def _mean_gradient_paths(runner: SiteRunner, inputs: Any, targets: torch.Tensor, steps: int, top_k: int,
                         batch_size: int, input_site: str | None, position: Any) -> dict[int, list[torch.Tensor]]:
    """Influence-pattern baseline as the authors' code computes it (NeuronPath ``path/influence_pattern.py``).

    The input is scaled from zero (``k/m x``, k = 0..m-1); for each layer, the gradient of P(target) with
    respect to that layer's neurons at the position is averaged over the m steps and over every sample of a
    class, and its argmax (top K) is the layer's neuron: one path per class. Returns ``{class: [(K,) per layer]}``.
    """
    alphas = path_points(steps, "riemann_left")[0].float()
    sums: dict[int, list[torch.Tensor]] = {}
    counts: dict[int, int] = {}
    for cls in torch.unique(targets).tolist():
        members = (targets == cls).nonzero().reshape(-1)
        for start in range(0, len(members), batch_size):
            rows = members[start:start + batch_size]
            if isinstance(position, torch.Tensor) and position.ndim > 0:
                runner.position = position.reshape(-1)[rows]
            x = inputs[rows] if not isinstance(inputs, (list, tuple)) else torch.stack([inputs[i] for i in rows])
            scaled, context = _scaled_inputs(runner, x, alphas, input_site)
            with torch.no_grad(), context:
                h, _ = runner.capture(scaled)
            t = torch.full((len(scaled) if isinstance(scaled, torch.Tensor) else len(rows) * steps,), int(cls),
                           dtype=torch.long, device=h[0].device)
            for li, hl in enumerate(h):
                leaf = hl.detach().float().requires_grad_(True)
                with context:
                    logits = runner.logits(scaled, {li: lambda vec, leaf=leaf: leaf})
                grad = torch.autograd.grad(target_prob(logits, t).sum(), leaf)[0]
                runner.counter.backward += 1
                total = sums.setdefault(int(cls), [torch.zeros(hl.shape[1]) for _ in h])
                total[li] += grad.detach().sum(0).cpu()
            counts[int(cls)] = counts.get(int(cls), 0) + len(rows) * steps
    return {cls: [torch.topk(g / counts[cls], top_k).indices for g in grads] for cls, grads in sums.items()}


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

    Parameters
    ----------
    model : nn.Module or TransformerBridge
    inputs : tensor with samples on dim 0 (images, or token ids of equal length).
    targets : int or (n,) target class / token per sample.
    sites : one site per layer, in layer order (default :func:`mlp_sites`).
    method : "jas" (layer-progressive JAS search), "activation" (argmax activation per layer),
        "influence" (greedy influence pattern, Wang et al. Alg. 2), "mean_gradient" (the influence-pattern
        baseline as the authors' code computes it: per class, argmax of the step- and sample-averaged
        gradient, one path per class), "random" (uniformly random neurons).
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
    all_t = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if all_t.numel() == 1:
        all_t = all_t.repeat(n)
    if all_t.numel() != n:
        raise DimensionError(f"got {all_t.numel()} targets for {n} samples; give one target class per sample")
    by_class = (_mean_gradient_paths(runner, inputs, all_t, steps, top_k, batch_size, input_site, pos_all)
                if method == "mean_gradient" else None)
    chunks_of = batches(inputs, batch_size)
    if progress and isinstance(inputs, (list, tuple)):
        from tqdm.auto import tqdm

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
            path = _influence_search(runner, x, t, h, top_k, steps, input_site, progress)
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

    ``paths`` is a :class:`NeuronPaths` or a (n, n_layers[, K]) index tensor.
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


