"""Capture on every architecture: equal to ``run_with_cache`` (bridges) and to a plain forward hook (modules)."""

from __future__ import annotations

import pytest
import torch

import interp

from .conftest import ARCHITECTURES, LANGUAGE_MODELS, make_example


def test_every_architecture_builds():
    """The suite's table is the list the report gives: every architecture builds and runs offline."""
    assert len(LANGUAGE_MODELS) >= 13 and {"cnn", "vit"} <= set(ARCHITECTURES)


def test_bridge_logits_equal_the_wrapped_model(lm):
    """The bridge's logits equal an untouched copy of the Hugging Face model's (eager attention)."""
    ex = make_example(lm)
    with torch.no_grad():
        ours = lm.model(ex.clean)
        theirs = lm.info.reference(ex.clean).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_site_kinds(lm):
    """Every model has the residual, attention and MLP kinds; only parallel blocks lack resid_mid."""
    kinds = set(lm.info.sites)
    assert {"resid_pre", "resid_post", "attn_out", "mlp_out", "z", "q", "k", "v", "pattern"} <= kinds, kinds
    assert ({"mlp_pre", "mlp_post"} <= kinds) == (not lm.info.moe)  # MoE: the hooks are the block's in/out
    assert ("resid_mid" in kinds) == (not lm.info.parallel)


def _reference_cache(b, tokens):
    with torch.no_grad():
        _, cache = b.model.run_with_cache(tokens)
    return cache


def _as_captured(site, value):
    """run_with_cache layout -> capture layout (patterns: batch, query pos, head, key pos)."""
    if site.endswith(("hook_pattern", "hook_attn_scores")):
        return value.permute(0, 2, 1, 3)
    return value


def test_capture_equals_run_with_cache_at_every_site_kind(lm):
    tokens = make_example(lm, n=3).clean
    cache = _reference_cache(lm, tokens)
    names = [name for kind in lm.info.sites.values() for name in kind]
    acts = interp.capture(lm.model, tokens, names, batch_size=2, progress=False)
    assert set(acts) == set(names)
    for name in names:
        torch.testing.assert_close(acts[name].data, _as_captured(name, cache[name]).float(), atol=1e-5, rtol=1e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_capture_equals_run_with_cache_at_every_hook(lm):
    """Every hook that fires and has a batch axis, captured in one call with batches of 2 of 3 inputs."""
    tokens = make_example(lm, n=3).clean
    cache = _reference_cache(lm, tokens)
    names = [name for name, value in cache.items() if value.ndim >= 1 and value.shape[0] == 3]
    assert len(names) > 60
    acts = interp.capture(lm.model, tokens, names, batch_size=2, progress=False)
    for name in names:
        torch.testing.assert_close(acts[name].data, _as_captured(name, cache[name]).float(), atol=1e-5, rtol=1e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_capture_of_hooks_without_a_batch_axis(built):
    """Hooks without a batch axis (position ids, rotary cos/sin: leading dim 1) give one row per input."""
    b = built("llama-gqa")
    tokens = make_example(b, n=3).clean
    cache = _reference_cache(b, tokens)
    names = [name for name, value in cache.items() if value.shape[0] != 3]
    assert names  # rotary cos/sin, position ids
    acts = interp.capture(b.model, tokens, names[0], batch_size=2, progress=False)
    assert acts.data.shape[0] == 3
    torch.testing.assert_close(acts.data[2], cache[names[0]][0].float())


def test_capture_positions_last_and_grads(lm):
    """positions='last' picks the last token; grads= is d metric / d site, the gradient with respect to an edit
    at the site (a zero added there), which is what patching the site changes.

    Not ``retain_grad`` on the tensor the hook sees: on several bridges (e.g. GPT-2's ``hook_resid_mid``) that
    tensor also feeds the forward pass around the hook, so its gradient is not the effect of editing the site.
    """
    ex = make_example(lm, n=2)
    site = lm.info.sites["resid_mid" if "resid_mid" in lm.info.sites else "resid_pre"][1]
    cache = _reference_cache(lm, ex.clean)
    last = interp.capture(lm.model, ex.clean, site, positions="last", progress=False)
    torch.testing.assert_close(last.data, cache[site][:, -1].float(), atol=1e-6, rtol=0)

    got = interp.capture(lm.model, ex.clean, [site], grads=lambda out, batch: ex.metric(out), progress=False)
    offset = torch.zeros_like(cache[site], requires_grad=True)
    logits = lm.model.run_with_hooks(ex.clean, fwd_hooks=[(site, lambda act, hook: act + offset)])
    (reference,) = torch.autograd.grad(ex.metric(logits), offset)
    torch.testing.assert_close(got.grads[site].data, reference.float(), atol=1e-5, rtol=1e-4)
    # and it is the slope of the metric along a random edit (finite differences)
    direction = torch.randn(cache[site].shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        up = ex.metric(lm.model.run_with_hooks(ex.clean, fwd_hooks=[(site, lambda act, hook: act + 1e-3 * direction)]))
        down = ex.metric(lm.model.run_with_hooks(ex.clean, fwd_hooks=[(site, lambda act, hook: act - 1e-3 * direction)]))
    slope = float((got.grads[site].data * direction).sum())
    assert float(up - down) / 2e-3 == pytest.approx(slope, rel=2e-2, abs=2e-3)


def test_module_capture_equals_a_forward_hook(module):
    """Plain modules: capture at every site equals what a forward hook on that module sees."""
    ex = make_example(module, n=3)
    names = [name for kind in module.info.sites.values() for name in kind]
    seen = {}
    modules = dict(module.model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, a, out, n=n: seen.__setitem__(n, out.detach().clone()))
               for n in names]
    try:
        with torch.no_grad():
            module.model(ex.clean)
    finally:
        for h in handles:
            h.remove()
    acts = interp.capture(module.model, ex.clean, names, batch_size=2, progress=False)
    for name in names:
        torch.testing.assert_close(acts[name].data, seen[name], atol=1e-6, rtol=0)
