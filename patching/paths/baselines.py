"""Baseline paths that scale the input from zero: the greedy influence pattern (Lu et al. 2021, "Influence
Patterns for Explaining Information Flow in BERT"; Wang et al. 2025, Algorithm 2) and the influence-pattern
baseline as the NeuronPath authors' code computes it (``path/influence_pattern.py``)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from interp import engine
from interp.engine import Hook
from interp.errors import ConfigError, SiteError

from ..integrated_gradients import path_points
from .runner import Edit, SiteRunner, neuron_mask, target_prob

__all__ = ["influence_search", "mean_gradient_paths", "scale_site"]


def influence_search(runner, inputs, targets, h, top_k, steps, input_site, progress) -> list[torch.Tensor]:
    """Greedy influence pattern (Lu et al. 2021; Wang et al. 2025 Alg. 2), batched over the m input steps.

    Source: Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025 (arXiv
    2503.09046); code ``foundation-model-research/NeuronPath`` at commit 5f93d0b (Algorithm 2, after Lu et al.
    2021). Differences: this chain-rule reading is not what the authors' code runs (that is
    :func:`mean_gradient_paths`).

    The input is scaled from zero (x_a = a x, a = (k+1)/m). The pattern's influence is the path integral
    of the chain of derivatives along the chosen neurons: c_1 = dh_1/da, c_l = c_{li-1} dh_l/dh_{li-1,p},
    score_l(j) = sum_a c_{li-1}(a) * dh_{li,j}/dh_{li-1,p}(a) * dP/dh_{li,j}(a). Derivatives of whole layers
    with respect to a scalar (forward-mode) use the double-backward trick.

    Parameters
    ----------
    runner : SiteRunner
        Runs the model with edits at the path sites (it counts the passes).
    inputs : Any
        The samples on dim 0 (images, or token ids of equal length).
    targets : torch.Tensor
        ``(B,)`` the target class of each sample.
    h : list of torch.Tensor
        The clean activations at the position of each path site, ``(B, d_l)`` per layer.
    top_k : int
        Neurons chosen per layer.
    steps : int
        m, the number of input-scaling steps.
    input_site : str, optional
        For token inputs: the site whose output is scaled from zero (default ``hook_embed`` of a bridge);
        float inputs are scaled themselves.
    progress : bool
        Show a progress bar over the layers.

    Returns
    -------
    list of torch.Tensor
        ``(B, top_k)`` neuron indices per layer.
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
        from interp._progress import tqdm

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
                extra = scale_site(runner, input_site, source)
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
def scale_site(runner: SiteRunner, site: str, source: torch.Tensor):
    """Scale the whole output of ``site`` by the per-row factor ``source`` (input interpolation).

    Parameters
    ----------
    runner : SiteRunner
        Runs the model with edits at the path sites (it counts the passes).
    site : str
        The site whose output is scaled (resolved on the runner's model).
    source : torch.Tensor
        ``(rows,)`` one factor per batch row.
    """

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
    """Inputs scaled by each alpha (steps major) and a factory of the context that scales ``input_site``
    instead (a fresh context per forward pass: a generator context cannot be entered twice)."""
    b = engine.n_samples(inputs)
    x_rep = engine.repeat(inputs, len(alphas))
    source = alphas.repeat_interleave(b)
    if isinstance(inputs, torch.Tensor) and inputs.is_floating_point() and input_site is None:
        return x_rep * source.view((-1,) + (1,) * (x_rep.ndim - 1)).to(x_rep.dtype), contextlib.nullcontext
    if input_site is None:
        if runner.bridge and "hook_embed" in runner.model.hook_dict:
            input_site = "hook_embed"
        else:
            raise ConfigError("this baseline scales the input from zero; for token inputs give input_site= (a "
                              "hook/module whose output is scaled, e.g. 'hook_embed')")
    return x_rep, lambda: scale_site(runner, input_site, source)


def mean_gradient_paths(runner: SiteRunner, inputs: Any, targets: torch.Tensor, steps: int, top_k: int,
                         batch_size: int, input_site: str | None, position: Any) -> dict[int, list[torch.Tensor]]:
    """Influence-pattern baseline as the authors' code computes it (NeuronPath ``path/influence_pattern.py``).

    Source: Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025 (arXiv
    2503.09046); code ``foundation-model-research/NeuronPath`` at commit 5f93d0b
    (``path/influence_pattern.py``). Differences: batched over steps and samples (the same paths as theirs on
    digits-vit).

    The input is scaled from zero (``k/m x``, k = 0..m-1); for each layer, the gradient of P(target) with
    respect to that layer's neurons at the position is averaged over the m steps and over every sample of a
    class, and its argmax (top K) is the layer's neuron: one path per class. Returns ``{class: [(K,) per layer]}``.

    Parameters
    ----------
    runner : SiteRunner
        Runs the model with edits at the path sites (it counts the passes).
    inputs : Any
        The samples on dim 0 (images, or token ids of equal length).
    targets : torch.Tensor
        ``(n,)`` the target class of each sample.
    steps : int
        m, the number of input-scaling steps.
    top_k : int
        Neurons per layer.
    batch_size : int
        Samples per batch (each batch runs ``batch_size * steps`` rows).
    input_site : str, optional
        For token inputs: the site whose output is scaled from zero (default ``hook_embed`` of a bridge);
        float inputs are scaled themselves.
    position : int or torch.Tensor
        Token position of the neurons; an ``(n,)`` tensor gives one per sample.
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
            with torch.no_grad(), context():
                h, _ = runner.capture(scaled)
            t = torch.full((len(scaled) if isinstance(scaled, torch.Tensor) else len(rows) * steps,), int(cls),
                           dtype=torch.long, device=h[0].device)
            for li, hl in enumerate(h):
                leaf = hl.detach().float().requires_grad_(True)
                with context():
                    logits = runner.logits(scaled, {li: lambda vec, leaf=leaf: leaf})
                grad = torch.autograd.grad(target_prob(logits, t).sum(), leaf)[0]
                runner.counter.backward += 1
                total = sums.setdefault(int(cls), [torch.zeros(hl.shape[1]) for _ in h])
                total[li] += grad.detach().sum(0).cpu()
            counts[int(cls)] = counts.get(int(cls), 0) + len(rows) * steps
    return {cls: [torch.topk(g / counts[cls], top_k).indices for g in grads] for cls, grads in sums.items()}
