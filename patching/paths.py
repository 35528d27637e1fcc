"""Neuron paths: layer-progressive search with the Joint Attribution Score (JAS).

After Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025
(arXiv 2503.09046, code github.com/foundation-model-research/NeuronPath, ``path/joint_attr.py``).

A *path* is one neuron (or the top-K neurons) per layer, at one token position (the CLS token of a
ViT, the last position of a language model). The layers are given as a list of *sites*: module paths
for ``nn.Module`` forward hooks (``"blocks.3.mlp.act"``) or hook names of a TransformerBridge
(``"blocks.3.mlp.hook_post"``), in the order the model runs them.

Joint Attribution Score of a neuron set N = {(li, i_l)} (Riemann sum with m steps, k = 0..m-1)::

    JAS(N) = [ sum_{(li,i) in N} sum_k dP(y | h^(k)) / dh^l_i ] * [ sum_{(li,i) in N} h^l_i / m ]

where h^(k) equals the clean activation everywhere except on N, where it is (k/m) h (the baseline zeroes
N). P is the softmax probability of the target. At each site the activation vector at the chosen
position is *replaced* by these values (the reference code does the same).

Layer-progressive search (Algorithm 1): for layer li, scale the whole layer-li vector from 0 together
with the neurons already on the path; the candidate score of neuron j is
``(sum_k g_j + sum_path sum_k g) * (h_j/m + sum_path h/m)``; append the argmax (or the top K).
All m interpolation steps run as ONE batched forward/backward per layer (``ig_batch`` bounds memory);
``ig_batch=1`` is the straightforward per-step loop, kept for benchmarks and tests.

Baselines: the argmax-activation path (``method="activation"``, the reference's ``base_path``), the
greedy influence-pattern path (``method="influence"``, Lu et al. 2021, "Influence Patterns for
Explaining Information Flow in BERT", as Algorithm 2 of Wang et al.), and random paths.

Example
-------
>>> paths = find_paths(model, images, labels, sites=mlp_sites(model), position=0)   # doctest: +SKIP
>>> paths.jas                      # (n_samples,) Joint Attribution Score of each path
>>> cmp = compare_paths(model, images, labels, sites=mlp_sites(model), position=0)  # doctest: +SKIP
>>> cmp.summary()                  # mean change in P(target) with 95% CIs, ours vs each baseline
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.errors import ConfigError, DimensionError, InputTypeError, SiteError, closest
from patching.integrated_gradients import path_points

__all__ = [
    "NeuronPaths",
    "PathComparison",
    "PathSimilarity",
    "PassCounter",
    "mlp_sites",
    "find_paths",
    "joint_attribution_score",
    "manipulate",
    "compare_paths",
    "path_similarity",
    "path_diagram",
    "METHODS",
    "FACTUAL_PROMPTS",
    "lm_inputs",
    "paths_report",
]

METHODS = ("jas", "activation", "influence", "random")
Edit = Callable[[torch.Tensor], torch.Tensor | None]


# --------------------------------------------------------------------------------------------------
# Site handling: hooks on nn.Modules or on a TransformerBridge, edits at one position per sample
# --------------------------------------------------------------------------------------------------


def _is_bridge(model: Any) -> bool:
    return type(model).__name__ == "TransformerBridge" or (
        hasattr(model, "hook_dict") and hasattr(model, "hooks") and hasattr(model, "run_with_hooks")
    )


def mlp_sites(model: Any) -> list[str]:
    """Default path sites: the MLP hidden neurons of every block, in layer order.

    TransformerBridge -> ``blocks.{L}.mlp.hook_post``; an ``nn.Module`` with ``model.blocks[i].mlp.act``
    (the zoo's ViTs) -> ``blocks.{i}.mlp.act``. Anything else: pass ``sites`` yourself.
    """
    if _is_bridge(model):
        n_layers = int(model.cfg.n_layers)
        return [f"blocks.{i}.mlp.hook_post" for i in range(n_layers)]
    blocks = getattr(model, "blocks", None)
    if blocks is not None and all(hasattr(getattr(b, "mlp", None), "act") for b in blocks):
        return [f"blocks.{i}.mlp.act" for i in range(len(blocks))]
    raise ConfigError(
        f"cannot guess the MLP sites of a {type(model).__name__}; pass sites=[...] (module paths such as "
        "'layers.0.mlp.act', or TransformerBridge hook names), one per layer in layer order"
    )


@dataclass
class PassCounter:
    """Counts forward and backward passes (one per model call / autograd call) and their batch rows."""

    forward: int = 0
    backward: int = 0
    rows: int = 0

    def reset(self) -> None:
        self.forward = self.backward = self.rows = 0


class _SiteRunner:
    """Runs a model with edits at the chosen position of each site and returns target-position logits."""

    def __init__(self, model: Any, sites: Sequence[str], position: int | torch.Tensor | None, forward=None):
        if isinstance(sites, str) or not isinstance(sites, Sequence) or len(sites) == 0:
            raise ConfigError(f"sites must be a non-empty list of site names, one per layer; got {sites!r}")
        if len(set(sites)) != len(sites):
            dup = sorted({s for s in sites if list(sites).count(s) > 1})
            raise ConfigError(f"sites must be distinct (one per layer); repeated: {dup}")
        self.model = model
        self.sites = list(sites)
        self.position = position
        self.forward_fn = forward
        self.bridge = _is_bridge(model)
        self.counter = PassCounter()
        self._modules: list[torch.nn.Module] = []
        if self.bridge:
            names = list(model.hook_dict)
            for s in self.sites:
                if s not in model.hook_dict:
                    hint = closest(s, names)
                    raise SiteError(
                        f"the model has no hook named {s!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                        + " (MLP neurons of a TransformerBridge are 'blocks.L.mlp.hook_post')"
                    )
        else:
            if not isinstance(model, torch.nn.Module):
                raise InputTypeError(f"model must be a torch.nn.Module or a TransformerBridge; got {type(model).__name__}")
            names = [n for n, _ in model.named_modules() if n]
            for s in self.sites:
                try:
                    self._modules.append(model.get_submodule(s))
                except AttributeError:
                    hint = closest(s, names)
                    raise SiteError(
                        f"the model has no submodule {s!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                    ) from None

    # -- positions -------------------------------------------------------------------------------
    def _pos(self, n: int, t: int, device) -> torch.Tensor:
        pos = 0 if self.position is None else self.position
        if isinstance(pos, int):
            p = torch.full((n,), pos, dtype=torch.long, device=device)
        else:
            p = torch.as_tensor(pos, dtype=torch.long, device=device).reshape(-1)
            if n % len(p):
                raise DimensionError(f"{len(p)} positions do not divide a batch of {n} rows")
            p = p.repeat(n // len(p))
        if ((p < -t) | (p >= t)).any():
            raise DimensionError(f"position {p.tolist()[:4]} out of range for {t} tokens")
        return p % t

    def _apply(self, act: torch.Tensor, edit: Edit) -> torch.Tensor | None:
        if isinstance(act, tuple):
            raise InputTypeError("path sites must output a single tensor (batch, pos, units) or (batch, units)")
        if act.ndim == 2:
            out = edit(act)
            return None if out is None else out
        if act.ndim != 3:
            raise DimensionError(f"site activations must be (batch, pos, units) or (batch, units); got {tuple(act.shape)}")
        n, t = act.shape[:2]
        rows = torch.arange(n, device=act.device)
        pos = self._pos(n, t, act.device)
        out = edit(act[rows, pos])
        if out is None:
            return None
        return act.index_put((rows, pos), out.to(act.dtype))

    def _bridge_hook(self, edit: Edit):
        return lambda act, hook: self._apply(act, edit)

    def _module_hook(self, edit: Edit):
        return lambda mod, inp, out: self._apply(out, edit)

    @contextlib.contextmanager
    def _hooks(self, edits: Mapping[int, Edit]):
        if self.bridge:
            fwd = [(self.sites[k], self._bridge_hook(e)) for k, e in edits.items()]
            with self.model.hooks(fwd_hooks=fwd):
                yield
            return
        handles = [
            self._modules[k].register_forward_hook(self._module_hook(e)) for k, e in edits.items()
        ]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def logits(self, inputs: Any, edits: Mapping[int, Edit] | None = None) -> torch.Tensor:
        """Model logits at the target position, shape (n, n_classes), with ``edits`` applied."""
        with self._hooks(edits or {}):
            out = self.forward_fn(self.model, inputs) if self.forward_fn is not None else self.model(inputs)
        self.counter.forward += 1
        self.counter.rows += len(out) if hasattr(out, "__len__") else 0
        if isinstance(out, (tuple, list)):
            out = out[0]
        if hasattr(out, "logits"):
            out = out.logits
        if out.ndim == 3:
            n, t = out.shape[:2]
            out = out[torch.arange(n, device=out.device), self._pos(n, t, out.device)]
        if out.ndim != 2:
            raise DimensionError(f"the model output must be logits (batch, classes) or (batch, pos, vocab); got {tuple(out.shape)}")
        return out

    def capture(self, inputs: Any) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Clean activations at the position of every site (list of (B, d)) and logits; checks site order."""
        store: dict[int, torch.Tensor] = {}
        order: list[int] = []

        def recorder(k):
            def edit(vec):
                order.append(k)
                store[k] = vec.detach().clone()
                return None

            return edit

        with torch.no_grad():
            logits = self.logits(inputs, {k: recorder(k) for k in range(len(self.sites))})
        missing = [self.sites[k] for k in range(len(self.sites)) if k not in store]
        if missing:
            raise SiteError(f"sites {missing} never ran in the model's forward pass; pick sites on the computation path")
        if len(order) != len(self.sites):
            raise ConfigError(f"each site must run once per forward pass; these ran {len(order)} times in total: "
                              f"{[self.sites[k] for k in order]} (a module shared between layers cannot be a site)")
        if order != sorted(order):
            ran = [self.sites[k] for k in order]
            raise ConfigError(f"sites must be listed in layer order (the order the model runs them); the model ran {ran}")
        return [store[k] for k in range(len(self.sites))], logits.detach()


def _repeat(inputs: Any, r: int) -> Any:
    if isinstance(inputs, torch.Tensor):
        return inputs.repeat(r, *([1] * (inputs.ndim - 1)))
    if isinstance(inputs, Mapping):
        return {k: _repeat(v, r) for k, v in inputs.items()}
    raise InputTypeError(f"inputs must be a tensor (or a dict of tensors) with the samples along dim 0; got {type(inputs).__name__}")


def _n_samples(inputs: Any) -> int:
    if isinstance(inputs, (list, tuple)):
        return len(inputs)
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0])
    if isinstance(inputs, Mapping) and inputs:
        return _n_samples(next(iter(inputs.values())))
    raise InputTypeError(f"inputs must be a tensor (or a dict of tensors) with the samples along dim 0; got {type(inputs).__name__}")


def _batches(inputs: Any, batch_size: int):
    """Yield (slice, batch). A list of tensors (e.g. prompts of different lengths) runs one item at a time."""
    n = _n_samples(inputs)
    if isinstance(inputs, (list, tuple)):
        for i, item in enumerate(inputs):
            item = torch.as_tensor(item) if not isinstance(item, (torch.Tensor, Mapping)) else item
            if isinstance(item, torch.Tensor) and not item.is_floating_point() and item.ndim == 1:
                item = item[None]  # token ids of one prompt
            yield slice(i, i + 1), item
        return
    step = max(1, int(batch_size))
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        yield sl, _slice(inputs, sl)


def _slice(inputs: Any, sl: slice) -> Any:
    if isinstance(inputs, Mapping):
        return {k: v[sl] for k, v in inputs.items()}
    return inputs[sl]


def _targets(targets: Any, n: int, n_classes: int) -> torch.Tensor:
    t = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if t.numel() == 1 and n > 1:
        t = t.repeat(n)
    if t.numel() != n:
        raise DimensionError(f"got {t.numel()} targets for {n} samples; give one target class per sample")
    bad = (t < 0) | (t >= n_classes)
    if bad.any():
        raise ConfigError(f"target class {t[bad][0].item()} is out of range: the model has {n_classes} classes (0..{n_classes - 1})")
    return t


def _mask(idx: torch.Tensor, d: int) -> torch.Tensor:
    """(B, K) neuron indices -> (B, d) bool mask."""
    return torch.zeros(idx.shape[0], d, dtype=torch.bool, device=idx.device).scatter_(1, idx, True)


def _target_prob(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=-1).gather(1, targets.view(-1, 1)).squeeze(1)


# --------------------------------------------------------------------------------------------------
# Joint integrated gradients (batched or per-step)
# --------------------------------------------------------------------------------------------------


def _joint_ig(
    runner: _SiteRunner,
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
        logits = runner.logits(_repeat(inputs, r), edits)
        prob = _target_prob(logits, targets.repeat(r)).sum()
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
    masks = {k: _mask(path[k], h[k].shape[1]) for k in layers}

    def values(a: torch.Tensor) -> dict[int, torch.Tensor]:
        a = a.to(h[0].device).view(-1, 1, 1)
        return {k: torch.where(masks[k], a * h[k].float(), h[k].float()) for k in layers}

    return values


def _path_sums(total: dict[int, torch.Tensor], h: list[torch.Tensor], path: Sequence[torch.Tensor], layers, steps):
    g = sum(total[k].gather(1, path[k]).sum(1) for k in layers)
    s = sum(h[k].float().gather(1, path[k]).sum(1) for k in layers) / steps
    return g, s


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class NeuronPaths:
    """Neuron paths, one per sample: ``indices[b, li, k]`` is the k-th neuron of layer ``sites[li]``.

    ``jas`` holds each path's Joint Attribution Score (Wang et al. 2025), ``targets`` the target
    class of each sample. ``passes`` counts the forward/backward passes and ``seconds`` the time spent.
    """

    indices: torch.Tensor
    sites: list[str]
    method: str
    targets: torch.Tensor
    jas: torch.Tensor | None = None
    steps: int = 20
    passes: PassCounter = field(default_factory=PassCounter)
    seconds: float = 0.0
    labels: list[str] | None = None

    @property
    def n_samples(self) -> int:
        return int(self.indices.shape[0])

    @property
    def top_k(self) -> int:
        return int(self.indices.shape[2])

    def layer(self, li: int) -> torch.Tensor:
        """(n_samples, K) neuron indices of layer ``li``."""
        return self.indices[:, li, :]

    def to_frame(self) -> pd.DataFrame:
        """One row per (sample, layer, rank): site, neuron index and (repeated) JAS and target."""
        b, n_layers, k = self.indices.shape
        idx = self.indices.cpu().numpy()
        sample, layer, rank = np.meshgrid(np.arange(b), np.arange(n_layers), np.arange(k), indexing="ij")
        frame = pd.DataFrame(
            {
                "sample": sample.ravel(),
                "layer": layer.ravel(),
                "site": np.asarray(self.sites, dtype=object)[layer.ravel()],
                "rank": rank.ravel(),
                "neuron": idx.ravel(),
                "target": self.targets.cpu().numpy()[sample.ravel()],
                "method": self.method,
            }
        )
        if self.jas is not None:
            frame["jas"] = self.jas.cpu().numpy()[sample.ravel()]
        if self.labels is not None:
            frame["label"] = np.asarray(self.labels, dtype=object)[sample.ravel()]
        return frame

    def frequency(self, samples: Sequence[int] | None = None) -> list[pd.Series]:
        """Per layer, how many of the (selected) samples' paths use each neuron (descending)."""
        idx = self.indices if samples is None else self.indices[list(samples)]
        return [pd.Series(idx[:, li, :].reshape(-1).cpu().numpy()).value_counts() for li in range(idx.shape[1])]

    def plot(self, max_per_layer: int = 8, title: str | None = None):
        """Layered path diagram (plotly), see :func:`path_diagram`."""
        return path_diagram(self, max_per_layer=max_per_layer, title=title)


# --------------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------------


def _check_common(steps: int, top_k: int, method: str) -> None:
    if method not in METHODS:
        hint = closest(method, METHODS)
        raise ConfigError(f"unknown path method {method!r}; use one of {METHODS}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
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
    x_rep = _repeat(inputs, r)
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
            prev_mask = _mask(path[li - 1], h[li - 1].shape[1]).repeat(r, 1).float()
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
        prob = _target_prob(logits, targets.repeat(r)).sum()
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
        chain = chain * (jac.detach() * _mask(chosen, d).repeat(r, 1)).sum(1)
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
def _scale_site(runner: _SiteRunner, site: str, source: torch.Tensor):
    """Scale the whole output of ``site`` by the per-row factor ``source`` (input interpolation)."""

    def scale(act):
        return act * source.view((-1,) + (1,) * (act.ndim - 1)).to(act.dtype)

    if runner.bridge:
        if site not in runner.model.hook_dict:
            raise SiteError(f"input_site {site!r} is not a hook of the model")
        with runner.model.hooks(fwd_hooks=[(site, lambda act, hook: scale(act))]):
            yield
        return
    try:
        module = runner.model.get_submodule(site)
    except AttributeError:
        raise SiteError(f"input_site {site!r} is not a submodule of the model") from None
    handle = module.register_forward_hook(lambda mod, inp, out: scale(out))
    try:
        yield
    finally:
        handle.remove()


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
        "influence" (greedy influence pattern), "random" (uniformly random neurons).
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
    runner = _SiteRunner(model, sites, position, forward)
    n = _n_samples(inputs)
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
    batches = _batches(inputs, batch_size)
    if progress and isinstance(inputs, (list, tuple)):
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=n, desc=f"{method} paths")
    for sl, x in batches:
        if isinstance(pos_all, torch.Tensor) and pos_all.ndim > 0:
            runner.position = pos_all.reshape(-1)[sl]
        h, logits = runner.capture(x)
        t = _targets(all_t[sl], len(h[0]), logits.shape[-1]).to(logits.device)
        if method == "jas":
            path = _jas_search(runner, x, t, h, steps, top_k, ig_batch, progress)
        elif method == "activation":
            path = [torch.topk(hl.float(), top_k, dim=1).indices for hl in h]
        elif method == "influence":
            path = _influence_search(runner, x, t, h, top_k, steps, input_site, progress)
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
    runner = _SiteRunner(model, sites, position, forward)
    tt = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    scores = []
    for sl, x in _batches(inputs, 16):
        if isinstance(position, torch.Tensor) and position.ndim > 0:
            runner.position = position.reshape(-1)[sl]
        h, logits = runner.capture(x)
        t = _targets(tt[sl] if tt.numel() > 1 else tt, len(h[0]), logits.shape[-1]).to(logits.device)
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


# --------------------------------------------------------------------------------------------------
# Manipulation (remove / enhance) and comparison
# --------------------------------------------------------------------------------------------------


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
    ``correct_clean``, ``correct_edit`` (argmax == target).
    """
    if op not in ("remove", "enhance"):
        raise ConfigError(f"op must be 'remove' or 'enhance'; got {op!r}")
    if isinstance(paths, NeuronPaths) and sites is None:
        sites = paths.sites
    sites = mlp_sites(model) if sites is None else list(sites)
    runner = _SiteRunner(model, sites, position, forward)
    rows = []
    tt = torch.as_tensor(targets).reshape(-1)
    for sl, x in _batches(inputs, batch_size):
        if isinstance(position, torch.Tensor) and position.ndim > 0:
            runner.position = position.reshape(-1)[sl]
        h, clean = runner.capture(x)
        t = _targets(tt[sl] if tt.numel() > 1 else tt, len(h[0]), clean.shape[-1]).to(clean.device)
        path = _validated(_as_path_list(paths, sl), h, sites)
        edits = {}
        for li, p in enumerate(path):
            mask = _mask(p.to(h[li].device), h[li].shape[1])
            scale = 0.0 if op == "remove" else float(factor)
            edits[li] = _scaled_where(mask, scale)
        with torch.no_grad():
            edited = runner.logits(x, edits)
        p0, p1 = _target_prob(clean, t), _target_prob(edited, t)
        rows.append(pd.DataFrame({
            "sample": np.arange(sl.start, sl.stop),
            "target": t.cpu().numpy(),
            "p_clean": p0.cpu().numpy(),
            "p_edit": p1.cpu().numpy(),
            "delta_p": (p1 - p0).cpu().numpy(),
            "correct_clean": (clean.argmax(-1) == t).cpu().numpy(),
            "correct_edit": (edited.argmax(-1) == t).cpu().numpy(),
        }))
    frame = pd.concat(rows, ignore_index=True)
    frame["op"] = op
    return frame


def _mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    from scipy import stats

    x = np.asarray(x, dtype=float)
    m = float(x.mean())
    if len(x) < 2 or float(x.std(ddof=1)) == 0.0:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


@dataclass
class PathComparison:
    """Paths of several methods on the same samples, their JAS and manipulation effects.

    ``frame``: one row per (sample, method, op) with ``delta_p``, ``correct_clean``, ``correct_edit``, ``jas``
    (random paths: averaged over ``n_random`` draws). ``paths``: the :class:`NeuronPaths` per method.
    """

    frame: pd.DataFrame
    paths: dict[str, NeuronPaths]
    level: float = 0.95

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def summary(self) -> pd.DataFrame:
        """Per (op, method): mean JAS, mean change of P(target) and of accuracy, with t-based CIs."""
        out = []
        for (op, method), g in self.frame.groupby(["op", "method"], sort=False):
            m, lo, hi = _mean_ci(g["delta_p"].to_numpy(), self.level)
            jm, jlo, jhi = _mean_ci(g["jas"].to_numpy(), self.level)
            acc = float(g["correct_edit"].mean() - g["correct_clean"].mean())
            out.append({"op": op, "method": method, "n": len(g), "jas": jm, "jas_lo": jlo, "jas_hi": jhi,
                        "delta_p": m, "delta_p_lo": lo, "delta_p_hi": hi, "delta_acc": acc})
        return pd.DataFrame(out)

    def contrast(self, ours: str = "jas", op: str = "remove", column: str = "delta_p") -> pd.DataFrame:
        """Paired differences ``ours - other`` per sample of ``column`` (mean and CI) for every other method."""
        f = self.frame[self.frame["op"] == op]
        wide = f.pivot(index="sample", columns="method", values=column)
        out = []
        for other in wide.columns:
            if other == ours:
                continue
            m, lo, hi = _mean_ci((wide[ours] - wide[other]).to_numpy(), self.level)
            out.append({"op": op, "column": column, "ours": ours, "other": other, "mean_diff": m, "lo": lo, "hi": hi,
                        "ci_excludes_zero": bool(lo > 0 or hi < 0)})
        return pd.DataFrame(out)

    def plot(self):
        """Bar chart of mean change in P(target) per method and op, with CI error bars (plotly)."""
        import plotly.graph_objects as go

        s = self.summary()
        fig = go.Figure()
        for op, g in s.groupby("op", sort=False):
            fig.add_bar(name=op, x=g["method"], y=g["delta_p"],
                        error_y=dict(type="data", symmetric=False, array=g["delta_p_hi"] - g["delta_p"],
                                     arrayminus=g["delta_p"] - g["delta_p_lo"]))
        fig.update_layout(barmode="group", title="Change in target probability when path neurons are edited",
                          yaxis_title="mean Δ P(target)", xaxis_title="path method", template="plotly_white")
        return fig


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
            delta_p=("delta_p", "mean"), correct_clean=("correct_clean", "first"),
            correct_edit=("correct_edit", "mean"), jas=("jas", "mean")).reset_index()
        f["method"] = method
        frames.append(f)
    return PathComparison(frame=pd.concat(frames, ignore_index=True), paths=found)


# --------------------------------------------------------------------------------------------------
# Similarity of paths within vs across classes
# --------------------------------------------------------------------------------------------------


@dataclass
class PathSimilarity:
    """Pairwise path overlap (mean over layers of the Jaccard index of the neuron sets).

    ``within`` / ``across``: mean overlap of pairs from the same / different classes; ``p_value``: label
    permutation test of ``within - across``; ``class_matrix``: mean overlap per pair of classes.
    """

    pairwise: np.ndarray
    classes: list[Any]
    class_matrix: pd.DataFrame
    within: float
    across: float
    p_value: float

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"within": self.within, "across": self.across, "difference": self.within - self.across,
                              "p_value": self.p_value}])

    def plot(self):
        import plotly.graph_objects as go

        m = self.class_matrix
        fig = go.Figure(go.Heatmap(z=m.to_numpy(), x=[str(c) for c in m.columns], y=[str(c) for c in m.index],
                                   colorscale="Viridis", colorbar=dict(title="overlap")))
        fig.update_layout(title=f"Path overlap within ({self.within:.3f}) vs across ({self.across:.3f}) classes",
                          xaxis_title="class", yaxis_title="class", template="plotly_white")
        return fig


def path_similarity(paths: NeuronPaths | torch.Tensor, labels: Sequence[Any], n_permutations: int = 1000,
                    seed: int = 0) -> PathSimilarity:
    """Are paths of the same class more alike than paths of different classes? (Wang et al. 2025, Sec. 5.3)"""
    idx = paths.indices if isinstance(paths, NeuronPaths) else torch.as_tensor(paths)
    if idx.ndim == 2:
        idx = idx[:, :, None]
    labels = np.asarray(list(labels))
    n, n_layers, k = idx.shape
    if len(labels) != n:
        raise DimensionError(f"{len(labels)} labels for {n} paths")
    a = idx.cpu().numpy()
    # Jaccard per layer: |A & B| / |A | B| with |A| = |B| = k
    inter = np.zeros((n, n))
    for li in range(n_layers):
        eq = (a[:, None, li, :, None] == a[None, :, li, None, :]).any(-1).sum(-1)
        inter += eq / (2 * k - eq)
    pair = inter / n_layers
    iu = np.triu_indices(n, 1)
    vals = pair[iu]

    def split(lab):
        same = lab[iu[0]] == lab[iu[1]]
        return vals[same].mean() if same.any() else np.nan, vals[~same].mean() if (~same).any() else np.nan

    within, across = split(labels)
    rng = np.random.default_rng(seed)
    obs = within - across
    hits = 0
    for _ in range(n_permutations):
        w, c = split(rng.permutation(labels))
        hits += (w - c) >= obs
    p_value = (hits + 1) / (n_permutations + 1)
    classes = list(pd.unique(labels))
    mat = pd.DataFrame(index=classes, columns=classes, dtype=float)
    for ci in classes:
        for cj in classes:
            block = pair[np.ix_(labels == ci, labels == cj)]
            if ci == cj:
                m = block.shape[0]
                mat.loc[ci, cj] = block[np.triu_indices(m, 1)].mean() if m > 1 else np.nan
            else:
                mat.loc[ci, cj] = block.mean()
    return PathSimilarity(pairwise=pair, classes=classes, class_matrix=mat, within=float(within),
                          across=float(across), p_value=float(p_value))


# --------------------------------------------------------------------------------------------------
# Path diagram
# --------------------------------------------------------------------------------------------------


def path_diagram(paths: NeuronPaths, samples: Sequence[int] | None = None, max_per_layer: int = 8,
                 title: str | None = None):
    """Layered graph of paths (plotly): one column per layer, nodes = neurons used by the paths (size =
    how many paths use it), edges = consecutive-layer neuron pairs (width = how many paths take them).

    Works in the HTML report (``Report(title).add_section("paths", fig)``).
    """
    import plotly.graph_objects as go

    idx = paths.indices if samples is None else paths.indices[list(samples)]
    n, n_layers, k = idx.shape
    a = idx.cpu().numpy()
    freq = [pd.Series(a[:, li, :].ravel()).value_counts() for li in range(n_layers)]
    shown = [list(f.index[:max_per_layer]) for f in freq]
    ypos = [{neuron: r for r, neuron in enumerate(s)} for s in shown]
    edges: dict[tuple[int, int, int], int] = {}
    for b in range(n):
        for li in range(n_layers - 1):
            for u in a[b, li]:
                for v in a[b, li + 1]:
                    if u in ypos[li] and v in ypos[li + 1]:
                        edges[(li, int(u), int(v))] = edges.get((li, int(u), int(v)), 0) + 1
    fig = go.Figure()
    top = max(edges.values()) if edges else 1
    for (li, u, v), c in sorted(edges.items(), key=lambda e: e[1]):
        fig.add_trace(go.Scatter(x=[li, li + 1], y=[-ypos[li][u], -ypos[li + 1][v]], mode="lines",
                                 line=dict(width=1 + 7 * c / top, color=f"rgba(55,90,160,{0.25 + 0.6 * c / top:.2f})"),
                                 hoverinfo="text", text=f"{c} path(s): L{li}.N{u} -> L{li + 1}.N{v}", showlegend=False))
    xs, ys, sizes, texts, labels = [], [], [], [], []
    for li in range(n_layers):
        for neuron in shown[li]:
            c = int(freq[li][neuron])
            xs.append(li)
            ys.append(-ypos[li][neuron])
            sizes.append(10 + 30 * c / max(1, n))
            texts.append(f"{paths.sites[li]}<br>neuron {neuron}<br>{c}/{n} paths")
            labels.append(str(neuron))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers+text", text=labels, textposition="middle right",
                             hovertext=texts, hoverinfo="text", marker=dict(size=sizes, color="#d9534f",
                                                                            line=dict(width=1, color="#333")),
                             showlegend=False))
    ticks = [s.replace(".hook_post", "").replace(".mlp.act", "") for s in paths.sites]
    fig.update_layout(
        title=title or f"Neuron paths ({paths.method}, {n} sample(s), top-{k} per layer)",
        xaxis=dict(tickmode="array", tickvals=list(range(n_layers)), ticktext=ticks, title="layer"),
        yaxis=dict(showticklabels=False, title="neurons (most used on top)"),
        template="plotly_white", height=max(300, 60 * min(max_per_layer, max(len(s) for s in shown)) + 120),
    )
    return fig


# --------------------------------------------------------------------------------------------------
# Language-model helpers and the HTML report
# --------------------------------------------------------------------------------------------------

#: Factual prompts with a one-token answer (the first token of the answer is the target).
FACTUAL_PROMPTS: list[tuple[str, str]] = [
    ("The capital of France is", " Paris"), ("The capital of Germany is", " Berlin"),
    ("The capital of Italy is", " Rome"), ("The capital of Spain is", " Madrid"),
    ("The capital of Japan is", " Tokyo"), ("The capital of Russia is", " Moscow"),
    ("The capital of England is", " London"), ("The capital of Egypt is", " Cairo"),
    ("The capital of Greece is", " Athens"), ("The capital of China is", " Beijing"),
    ("The capital of Canada is", " Ottawa"), ("The capital of Austria is", " Vienna"),
    ("The capital of Portugal is", " Lisbon"), ("The capital of Ireland is", " Dublin"),
    ("The capital of Norway is", " Oslo"), ("The Eiffel Tower is located in the city of", " Paris"),
    ("The Colosseum is located in the city of", " Rome"), ("The largest planet in the solar system is", " Jupiter"),
    ("Water is made of hydrogen and", " oxygen"), ("The chemical symbol for gold is", " Au"),
    ("The first president of the United States was George", " Washington"),
    ("The author of Romeo and Juliet is William", " Shakespeare"), ("The Great Wall is located in", " China"),
    ("The currency of Japan is the", " yen"), ("The opposite of hot is", " cold"),
    ("Monday, Tuesday,", " Wednesday"), ("The Statue of Liberty is in New", " York"),
    ("Albert Einstein developed the theory of", " relativity"),
]


def lm_inputs(model: Any, tokenizer: Any, prompts: Sequence[str], answers: Sequence[str]
              ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Token ids of each prompt (one tensor per prompt, BOS prepended by ``model.to_tokens`` when the
    model has it) and the target token of each answer (its first token)."""
    if len(prompts) != len(answers):
        raise DimensionError(f"{len(prompts)} prompts but {len(answers)} answers")
    if hasattr(model, "to_tokens"):
        tokens = [model.to_tokens(p)[0] for p in prompts]
    else:
        tokens = [torch.tensor(tokenizer(p)["input_ids"]) for p in prompts]
    targets = []
    for a in answers:
        ids = tokenizer(a, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ConfigError(f"answer {a!r} has no tokens")
        targets.append(ids[0])
    return tokens, torch.tensor(targets)


def paths_report(comparison: PathComparison | None = None, paths: NeuronPaths | None = None,
                 similarity: PathSimilarity | None = None, title: str = "Neuron paths", notes: str = ""):
    """An :class:`interp.report.html.Report` with the path diagram, manipulation results and similarity."""
    from interp.report.html import Report

    rep = Report(title, subtitle="Layer-progressive Joint Attribution paths (Wang et al., ICLR 2025)")
    if notes:
        rep.add_section("About", notes)
    if paths is None and comparison is not None:
        paths = comparison.paths.get("jas") or next(iter(comparison.paths.values()))
    if paths is not None:
        rep.add_section("Path diagram", paths.plot())
        rep.add_table("Paths", paths.to_frame())
    if comparison is not None:
        rep.add_section("Remove / enhance path neurons", comparison.plot())
        rep.add_table("Summary (means and 95% CIs)", comparison.summary().round(5))
        contrasts = pd.concat([comparison.contrast("jas", op=op, column=c) for op in comparison.frame["op"].unique()
                               for c in ("delta_p", "jas")], ignore_index=True)
        rep.add_table("Ours minus baselines (paired over samples)", contrasts.round(5))
        for method, p in comparison.paths.items():
            if method != "jas":
                rep.add_section(f"Path diagram: {method}", p.plot())
    if similarity is not None:
        rep.add_section("Path similarity within vs across classes", similarity.plot())
        rep.add_table("Similarity", similarity.to_frame().round(5))
    return rep
