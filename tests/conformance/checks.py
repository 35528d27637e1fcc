"""The checks every generated family goes through, as plain functions of a built model (``Built``).

Each check returns a short note when the library is right, raises ``AssertionError`` (or any other exception)
when it is wrong, lets an :class:`interp.errors.InterpError` through when the library refuses by name (a
refusal is a right answer: it is counted as *refused* in the report, never as passed), and raises
:class:`NotApplicable` when the family lacks what the check needs (``n/a``). The expectations come
from the model: the reference computations are TransformerLens's own (``run_with_cache``,
``transformer_lens.patching``), plain torch autograd through TransformerLens hooks, the wrapped Hugging Face
model's logits and its config.

``CHECKS`` names them in the report's column order; ``tests/conformance/test_conformance_families.py`` runs
them under pytest and ``python -m tests.conformance.report`` writes the table of tests/conformance/README.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import interp
import patching
from interp import engine
from interp.errors import SiteError
from interp.label.vocab import logit_lens, mlp_weights, vocab_projection
from patching import metrics

from .conftest import make_example

# our site kind -> TransformerLens sweep over the kind (same cells as our default ``by``)
TL_SWEEPS = {
    "resid_pre": "get_act_patch_resid_pre", "resid_mid": "get_act_patch_resid_mid",
    "attn_out": "get_act_patch_attn_out", "mlp_out": "get_act_patch_mlp_out",
    "z": "get_act_patch_attn_head_out_all_pos", "q": "get_act_patch_attn_head_q_all_pos",
    "k": "get_act_patch_attn_head_k_all_pos", "v": "get_act_patch_attn_head_v_all_pos",
    "pattern": "get_act_patch_attn_head_pattern_all_pos",
}
ATTRIBUTION_KINDS = ("resid_pre", "resid_mid", "attn_out", "mlp_out", "z", "q", "k", "v", "pattern", "mlp_pre",
                     "mlp_post")
_HEAD_KINDS = ("z", "q", "k", "v")


class NotApplicable(Exception):
    """The family lacks what a check needs (no ``blocks.{L}`` site kinds: encoder-decoders, HRM, DeepSeek-V4's
    hyper-connection blocks); reported as ``n/a``, never as passed or refused."""


def _cache(b: Any, tokens: torch.Tensor) -> Any:
    with torch.no_grad():
        return b.model.run_with_cache(tokens)


def _as_captured(site: str, value: torch.Tensor, captured_shape: tuple | None = None) -> torch.Tensor:
    """run_with_cache layout -> capture layout (patterns: batch, query pos, head, key pos; per-head vectors: batch,
    pos, head, d_head, which a bridge with its own head-first layout, e.g. MLA, gets permuted into)."""
    if site.endswith(("hook_pattern", "hook_attn_scores")):
        return value.permute(0, 2, 1, 3)
    if (captured_shape is not None and value.ndim == 4 and tuple(value.shape) != tuple(captured_shape)
            and tuple(value.permute(0, 2, 1, 3).shape) == tuple(captured_shape)):
        return value.permute(0, 2, 1, 3)
    return value


def _reference_logits(b: Any, tokens: torch.Tensor) -> torch.Tensor:
    """The untouched Hugging Face copy's logits; an encoder-decoder's decoder reads the input shifted right after
    its start token (what the bridge feeds it when given no decoder input)."""
    cfg = b.info.reference.config
    extra = {}
    if getattr(cfg, "is_encoder_decoder", False):
        start = getattr(cfg, "decoder_start_token_id", None)
        extra["decoder_input_ids"] = tokens if start is None else torch.cat(
            [torch.full_like(tokens[:, :1], start), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        out = b.info.reference(tokens, **extra)
    return getattr(out, "logits", out)


def check_boots(b: Any) -> str:
    """The bridge runs offline and its logits equal the untouched Hugging Face copy's."""
    ex = make_example(b)
    with torch.no_grad():
        ours = b.model(ex.clean)
    torch.testing.assert_close(ours, _reference_logits(b, ex.clean), atol=1e-4, rtol=1e-4)
    return f"{len(b.info.sites)} site kinds"


def check_layouts(b: Any) -> str:
    """The engine's layout of every site kind, checked against the config: the residual stream and the MLP output
    are d_model wide, mlp_pre/mlp_post d_mlp wide (per layer: MoE layers refuse them), per-head sites have
    n_heads query heads (k/v: n_key_value_heads), patterns are square over positions."""
    ex = make_example(b, n=2)
    cfg = b.model.cfg
    names = [n for kind in b.info.sites.values() for n in kind]
    if not names:
        raise NotApplicable(f"{b.info.name}: the bridge has no site kinds (no blocks.{{L}} hooks)")
    _, cache = _cache(b, ex.clean)  # patterns: the raw hook tensors, which engine.layout describes
    acts = interp.capture(b.model, ex.clean, names, batch_size=2, progress=False)  # the rest: as the engine hands
    n_pos = ex.clean.shape[1]
    kv_heads = int(getattr(cfg, "n_key_value_heads", None) or cfg.n_heads)
    for kind, sites in b.info.sites.items():
        for site in sites:
            data = cache[site] if kind == "pattern" else acts[site].data
            axes = engine.layout(site, data.ndim, bridge=True)
            if kind in ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"):
                assert data.shape[axes["unit"]] == cfg.d_model and data.shape[axes["pos"]] == n_pos, (site, data.shape)
            elif kind in ("mlp_pre", "mlp_post"):
                assert data.shape[axes["unit"]] == _d_mlp(b, engine.layer_of(site)), (site, data.shape, _d_mlp(b, engine.layer_of(site)))
            elif kind in _HEAD_KINDS:
                heads = kv_heads if kind in ("k", "v") else cfg.n_heads
                assert "head" in axes and data.shape[axes["head"]] == heads, (site, data.shape, axes, heads)
                assert data.shape[axes["pos"]] == n_pos, (site, data.shape, axes)
            elif kind == "pattern":
                assert data.shape[axes["head"]] == cfg.n_heads and data.shape[axes["pos"]] == n_pos, (site, axes)
                assert data.shape[axes["unit"]] == n_pos, (site, data.shape)
    return f"{len(names)} sites"


def _d_mlp(b: Any, layer: int) -> int:
    """The MLP width of ``layer`` read off the wrapped model itself: the input width of the last linear map of the
    layer's MLP back to d_model (``down_proj``, ``fc2``, GPT-2's ``c_proj`` Conv1D ...)."""
    mlp = b.model.blocks[layer].mlp
    mlp = getattr(mlp, "original_component", mlp)
    d_model = int(b.model.cfg.d_model)
    widths = []
    for module in mlp.modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == d_model:
            widths.append(module.in_features)
        elif type(module).__name__ == "Conv1D" and module.weight.shape[1] == d_model:  # (in, out)
            widths.append(int(module.weight.shape[0]))
    assert widths, f"layer {layer}: no linear map back to d_model in {type(mlp).__name__}"
    return widths[-1]


def check_capture(b: Any) -> str:
    """``interp.capture`` equals ``run_with_cache`` at every hook that fires with a batch axis (batches of 2 of 3
    inputs), in particular every site kind.

    The reference runs the same batches (``[0:2]``, ``[2:3]``): a float32 model's values depend on the batch it
    runs in at the level of rounding (DeepSeek-V4's hyper-connection mixing, Nemotron-H's Mamba-2 scan: 1e-5 of
    values near 100), which is no defect of the capture; against the one batch of 3 the values must agree to
    1e-6 of the hook's largest value."""
    tokens = make_example(b, n=3).clean
    _, cache = _cache(b, tokens)
    names = [name for name, value in cache.items() if value.ndim >= 1 and value.shape[0] == 3]
    assert names, "run_with_cache recorded nothing"
    (_, first), (_, second) = _cache(b, tokens[:2]), _cache(b, tokens[2:])
    acts = interp.capture(b.model, tokens, names, batch_size=2, progress=False)
    for name in names:
        got = acts[name].data
        same = _as_captured(name, torch.cat([first[name], second[name]]), got.shape).float()
        torch.testing.assert_close(got, same, atol=1e-5, rtol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
        whole = _as_captured(name, cache[name], got.shape).float()
        scale = max(float(whole.abs().max()), 1.0) if whole.numel() else 1.0
        torch.testing.assert_close(got, whole, atol=1e-6 * scale + 1e-6, rtol=1e-5,
                                   msg=lambda m, name=name: f"{name} (one batch of 3): {m}")
    return f"{len(names)} hooks"


def _reaches(b: Any, kind: str, tokens: torch.Tensor) -> bool:
    return all(engine.edits_reach(b.model, site, tokens[:1]) for site in b.info.sites[kind])


def check_patching(b: Any) -> str:
    """Activation patching at every TransformerLens sweep kind the model has equals ``transformer_lens.patching``;
    where edits do not reach the forward pass (``engine.edits_reach``) it is refused, not a silent no-op."""
    import transformer_lens.patching as tlp

    ex = make_example(b)
    _, cache = _cache(b, ex.clean)
    done, refused = [], []
    for kind, sweep in TL_SWEEPS.items():
        if kind not in b.info.sites:
            continue
        if not _reaches(b, kind, ex.clean):
            try:
                patching.activation_patching(b.model, ex.clean, ex.corrupted, ex.metric, kind)
            except SiteError:
                refused.append(kind)
                continue
            raise AssertionError(f"{kind}: edits do not reach the forward pass, yet patching it was not refused")
        reference = (_head_first_reference(b, ex, cache, kind) if kind in _HEAD_KINDS and _head_first(b, kind, ex)
                     else getattr(tlp, sweep)(b.model, ex.corrupted, cache, ex.metric))
        ours = patching.activation_patching(b.model, ex.clean, ex.corrupted, ex.metric, kind)
        assert ours.values.shape == reference.shape, (kind, ours.values.shape, reference.shape)
        torch.testing.assert_close(ours.values, reference.double(), atol=1e-4, rtol=0, msg=lambda m, k=kind: f"{k}: {m}")
        if kind in ("resid_pre", "z") and b.info.kind == "bridge":
            # the same metric declared (patching.metrics): the sweep unembeds only position -1 and tokens 9, 10
            declared = patching.activation_patching(b.model, ex.clean, ex.corrupted, metrics.logit_diff(9, 10), kind)
            torch.testing.assert_close(declared.values, reference.double(), atol=1e-4, rtol=0,
                                       msg=lambda m, k=kind: f"{k}, declared metric: {m}")
        done.append(kind)
    if not done:
        raise NotApplicable(f"{b.info.name}: no site kind that TransformerLens's patching sweeps")
    return f"{len(done)} kinds" + (f", refused {refused}" if refused else "")


def _head_first(b: Any, kind: str, ex: Any) -> bool:
    """Whether the bridge's raw ``kind`` hooks are head-first, ``(batch, head, pos, d)`` (multi-head latent
    attention: DeepSeek-V2/V3, GLM-MoE-DSA, Youtu). ``transformer_lens.patching``'s per-head setters index axis 2
    as the head (``act[:, :, head]``), which is a position there: its sweep patches positions, not heads, so it is
    no reference on these bridges."""
    n_pos = ex.clean.shape[1]
    shapes = {tuple(_cache(b, ex.clean[:1])[1][s].shape) for s in b.info.sites[kind]}
    return all(len(s) == 4 and s[2] == n_pos and s[1] != n_pos for s in shapes)


def _head_first_reference(b: Any, ex: Any, cache: Any, kind: str) -> torch.Tensor:
    """Per-head activation patching by hand (the reference where :func:`_head_first`): for every layer and head,
    the metric of the corrupted run with that head's clean vectors (all positions) written into the raw
    head-first hook tensor by a plain TransformerLens hook; ``[layer, head]``."""
    sites = b.info.sites[kind]
    n_heads = cache[sites[0]].shape[1]
    out = torch.zeros(len(sites), n_heads, dtype=torch.float64)
    for li, site in enumerate(sites):
        for head in range(n_heads):
            def patch(act: torch.Tensor, hook: Any, site: str = site, head: int = head) -> torch.Tensor:
                act = act.clone()
                act[:, head] = cache[site][:, head].to(act)
                return act
            with torch.no_grad():
                logits = b.model.run_with_hooks(ex.corrupted, fwd_hooks=[(site, patch)])
            out[li, head] = float(ex.metric(logits))
    return out


def _autograd_scores(b: Any, ex: Any, sites: list[str], frozen: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """grad(metric at the corrupted run) * (clean - corrupted) at each hook, elementwise, by plain torch autograd
    through TransformerLens hooks (denoising AtP); ``frozen``: hooks whose value is detached (constants of the
    backward pass: the normalisation scales, RelP's LN rule)."""
    _, clean_cache = _cache(b, ex.clean)
    offsets: dict[str, torch.Tensor] = {}
    acts: dict[str, torch.Tensor] = {}

    def grab(site: str) -> Callable[..., torch.Tensor]:
        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:  # act + 0: the gradient of act, total
            offsets[site] = torch.zeros_like(act, requires_grad=True)
            acts[site] = act.detach()
            return act + offsets[site]
        return hook

    freeze = [(name, lambda act, hook: act.detach()) for name in frozen]
    logits = b.model.run_with_hooks(ex.corrupted, fwd_hooks=[(s, grab(s)) for s in sites] + freeze)
    grads = torch.autograd.grad(ex.metric(logits), [offsets[s] for s in sites], allow_unused=True)
    return {s: (torch.zeros_like(acts[s]) if g is None else g) * (clean_cache[s] - acts[s])
            for s, g in zip(sites, grads)}


def _reduce(score: torch.Tensor, site: str, dims: tuple[str, ...]) -> torch.Tensor:
    """Sum a TransformerLens-layout score (``[batch, pos, (head,) d]``; patterns ``[batch, head, q, k]``) to
    the cells ``dims`` (after the layer axis)."""
    if site.endswith("hook_pattern"):
        named = {"head": 1}
    elif score.ndim == 4:
        named = {"pos": 1, "head": 2, "neuron": 3, "unit": 3}
    else:
        named = {"pos": 1, "neuron": 2, "unit": 2}
    keep = [named[d] for d in dims]
    out = score.sum(dim=[a for a in range(score.ndim) if a not in keep])
    order = sorted(keep)
    return out.permute([order.index(a) for a in keep]) if len(keep) > 1 else out


def check_atp(b: Any, kinds: tuple[str, ...] = ATTRIBUTION_KINDS, rules: Any = None) -> str:
    """Attribution patching at every site kind equals grad . (clean - corrupted) from plain torch autograd.

    ``rules=["ln"]``: relevance patching with RelP's LN rule alone instead, against the same autograd with every
    normalisation scale (``hook_scale``) detached (the rule: Ali et al. 2022, as RelP uses it)."""
    ex = make_example(b)
    kinds = [k for k in kinds if k in b.info.sites and _reaches(b, k, ex.clean)]
    if not kinds:
        raise NotApplicable(f"{b.info.name}: no editable site kind")
    if rules is None:
        res = patching.attribution_patching(b.model, ex.clean, ex.corrupted, ex.metric, kinds)
        frozen: tuple[str, ...] = ()
    else:
        assert list(rules) == ["ln"], "the autograd reference knows the LN rule only"
        res = patching.relevance_patching(b.model, ex.clean, ex.corrupted, ex.metric, kinds, rules=rules)
        frozen = tuple(n for n in b.model.hook_dict if n.endswith("hook_scale"))
        assert frozen, f"{b.info.name}: no hook_scale to freeze"
    sites = [s for k in kinds for s in b.info.sites[k]]
    scores = _autograd_scores(b, ex, sites, frozen)
    n_pos = ex.clean.shape[1]
    for kind in kinds:
        grid = res[kind]
        if kind in _HEAD_KINDS:  # a bridge with head-first per-head hooks (MLA): into [batch, pos, head, d]
            scores |= {s: scores[s].permute(0, 2, 1, 3) for s in b.info.sites[kind]
                       if scores[s].shape[2] == n_pos and scores[s].shape[1] != n_pos}
        expected = torch.stack([_reduce(scores[s].double(), s, grid.dims[1:]) for s in b.info.sites[kind]])
        assert float(expected.abs().max()) > 0 or kind == "pattern", (kind, "the autograd reference is all zero")
        torch.testing.assert_close(grid.effect.double(), expected, atol=1e-5, rtol=1e-4,
                                   msg=lambda m, k=kind: f"{k}: {m}")
    return f"{len(kinds)} kinds"


def check_relp(b: Any) -> str:
    """RelP's rules conserve relevance from the metric to the residual stream entering block 0, to 1e-4 relative
    in float32 (on the bias-free model), with the biases restored afterwards."""
    if "resid_pre" not in b.info.sites:
        raise NotApplicable(f"{b.info.name}: no blocks.0.hook_resid_pre to conserve relevance to")
    ex = make_example(b)
    with torch.no_grad():
        before = b.model(ex.clean)
    res = patching.relevance_conservation(b.model, ex.clean[:1], lambda out: out[:, -1, 9].sum())
    with torch.no_grad():
        torch.testing.assert_close(b.model(ex.clean), before, atol=0, rtol=0)
    assert res.relative_error <= 1e-4, res.summary()
    return f"relative error {res.relative_error:.1e}"


def forward_readout(model: Any, vectors: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """Logits the model computes when its last residual stream holds ``vectors`` (one per position)."""
    site = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    out = []
    for start in range(0, len(vectors), chunk):
        part = vectors[start:start + chunk]
        tokens = torch.full((1, len(part)), 5, dtype=torch.long)
        with torch.no_grad():
            logits = model.run_with_hooks(tokens, fwd_hooks=[(site, lambda act, hook, part=part: part[None].to(act))])
        out.append(logits[0].float())
    return torch.cat(out)


def check_vocab(b: Any) -> str:
    """The logit lens of the last residual stream reproduces the model's own logits, and the vocabulary
    projection of the last layer's MLP output rows equals the forward pass from there."""
    if "resid_post" not in b.info.sites:
        raise NotApplicable(f"{b.info.name}: no blocks.{{L}}.hook_resid_post to read out from")
    ex = make_example(b)
    site = b.info.sites["resid_post"][-1]
    logits, cache = _cache(b, ex.clean)
    got = logit_lens(b.model, cache[site].reshape(-1, b.model.cfg.d_model))
    torch.testing.assert_close(got, logits.reshape(-1, logits.shape[-1]).float(), atol=1e-4, rtol=1e-4)
    layer = b.info.n_layers - 1
    rows = mlp_weights(b.model, layer)["out"]
    units = list(range(0, rows.shape[0], max(1, rows.shape[0] // 8)))
    proj = vocab_projection(b.model, layer, "out", units=units, k=5)
    vectors = rows[units]
    post = getattr(b.model.blocks[layer], "ln2_post", None)
    if post is not None:
        with torch.no_grad():
            vectors = post(vectors[:, None])[:, 0]
    reference = forward_readout(b.model, vectors)
    torch.testing.assert_close(torch.as_tensor(proj.top_logits), reference.topk(5, dim=1).values, atol=1e-4,
                               rtol=1e-4)
    return f"{len(units)} units"


#: the report's columns, in order
CHECKS: dict[str, Callable[[Any], str]] = {
    "boots": check_boots, "layouts": check_layouts, "capture": check_capture, "patching": check_patching,
    "atp": check_atp, "relp": check_relp, "vocab": check_vocab,
}
