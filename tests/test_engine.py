"""The hook engine: one dispatcher per site, the documented order of rules, edits and reads, nesting,
stop-early, gradients at sites (with rules), and that no other module touches hook APIs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from interp import engine
from interp.engine import Hook, Phase
from interp.errors import InputTypeError, SiteError

ROOT = Path(__file__).resolve().parents[1]


def test_phases_run_in_order_whatever_the_nesting(tiny_bridge):
    tokens = torch.randint(0, 50, (2, 5))
    site = "blocks.0.hook_resid_post"
    order = []

    def tag(name, value=None):
        def fn(act):
            order.append(name)
            return None if value is None else act * 0 + value
        return fn

    with torch.no_grad(), engine.hooked(tiny_bridge, [Hook(site, tag("read"), Phase.READ)]):
        with engine.hooked(tiny_bridge, [Hook(site, tag("edit-2", 2.0)), Hook(site, tag("define"), Phase.DEFINE)]):
            with engine.hooked(tiny_bridge, [Hook(site, tag("edit-3", 3.0))]):
                rec = engine.record(tiny_bridge, tokens, [site])
    assert order == ["define", "edit-2", "edit-3", "read"]
    assert torch.all(rec.acts[site] == 3.0)  # a record sees the value after every edit
    assert not engine.hooks._REGISTRY.get(tiny_bridge)  # every dispatcher removed on exit


def test_aliases_share_one_dispatcher(tiny_bridge):
    """``hook_resid_pre`` of block 1 and ``hook_resid_post`` of block 0 are different points, but the
    alias names of one hook point must land in one dispatcher (one order)."""
    aliases = {}
    for name, point in tiny_bridge.hook_dict.items():
        aliases.setdefault(id(point), []).append(name)
    shared = next(names for names in aliases.values() if len(names) > 1)
    order = []
    with engine.hooked(tiny_bridge, [Hook(shared[0], lambda a: order.append("read"), Phase.READ),
                                     Hook(shared[1], lambda a: order.append("edit"))]):
        tiny_bridge(torch.randint(0, 50, (1, 4)))
    assert order == ["edit", "read"]


def test_hooks_are_removed_when_the_block_raises(tiny_bridge):
    before = tiny_bridge(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(RuntimeError):
        with engine.hooked(tiny_bridge, [Hook("blocks.0.hook_resid_post", lambda a: a * 0)]):
            raise RuntimeError("boom")
    torch.testing.assert_close(tiny_bridge(torch.zeros(1, 3, dtype=torch.long)), before)


def test_stop_early_and_missing_sites(tiny_bridge):
    tokens = torch.randint(0, 50, (2, 4))
    rec = engine.record(tiny_bridge, tokens, ["blocks.0.hook_resid_post"], stop=True)
    assert rec.output is None and rec.acts["blocks.0.hook_resid_post"].shape == (2, 4, 32)
    full = engine.record(tiny_bridge, tokens, ["blocks.0.hook_resid_post"])
    assert full.output.shape == (2, 4, 50)
    torch.testing.assert_close(rec.acts["blocks.0.hook_resid_post"], full.acts["blocks.0.hook_resid_post"])
    with pytest.raises(SiteError, match="closest"):
        engine.record(tiny_bridge, tokens, engine.resolve_sites(tiny_bridge, "blocks.0.hook_resid_pots"))


def test_gradients_reach_a_site_read_by_a_rule(tiny_bridge):
    """The ordering bug of the old code: a rule that saves ``mlp.hook_pre`` before the gradient offset is added
    there cuts the gradient (RelP at mlp_pre was exactly 0). With reads after edits the gradient flows."""
    tokens = torch.randint(0, 50, (2, 6))
    box = {}
    rule = [Hook("blocks.1.mlp.hook_pre", lambda x: box.__setitem__("x", x), Phase.READ),
            Hook("blocks.1.mlp.hook_post", lambda y: y.detach() + (box["x"] - box["x"].detach()), Phase.DEFINE)]
    got = engine.gradients(tiny_bridge, tokens, ["blocks.1.mlp.hook_pre"], lambda out: out[:, -1, 3].sum(), hooks=rule)
    assert got.grads["blocks.1.mlp.hook_pre"].abs().sum() > 0


def test_plain_module_input_and_output_sites():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    sites = engine.resolve_sites(net, ["1:input", "1"])
    rec = engine.record(net, x, sites)
    torch.testing.assert_close(rec.acts["1"], torch.tanh(rec.acts["1:input"]))
    with torch.no_grad():
        edited = engine.run(net, x, [Hook("1:input", lambda a: a * 0)])
    torch.testing.assert_close(edited, net[2](torch.zeros(5, 4)))
    with pytest.raises(InputTypeError):
        engine.run(net, x, ["not a hook"])


def test_layout_names_the_unit_axis():
    assert engine.layout("blocks.0.attn.hook_pattern", 4, bridge=True) == {"head": 1, "pos": 2, "unit": 3}
    assert engine.layout("blocks.0.attn.hook_z", 4, bridge=True) == {"pos": 1, "head": 2, "unit": 3}
    assert engine.layout("layer1.conv", 4, bridge=False)["unit"] == 1  # conv maps: unit is the channel
    assert engine.layout("blocks.0.hook_resid_pre", 3, bridge=True) == {"pos": 1, "unit": 2}
    assert engine.layer_of("blocks.12.mlp.hook_post") == 12 and engine.layer_of("ln_final.hook_out") is None


HOOK_API = re.compile(r"register_forward_hook|register_forward_pre_hook|register_full_backward_hook|\.register_hook\("
                      r"|\.add_hook\(|run_with_hooks|run_with_cache|\.hooks\(")


def test_only_the_engine_touches_hook_apis():
    touching = sorted(str(p.relative_to(ROOT)) for pkg in ("interp", "patching", "probes")
                      for p in (ROOT / pkg).rglob("*.py") if HOOK_API.search(p.read_text()))
    assert touching == ["interp/engine/hooks.py"], touching


def test_no_module_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for pkg in ("interp", "patching", "probes") for p in (ROOT / pkg).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert not long, long
