"""LRP propagation rules of RelP, as objects (after Captum's ``_utils/lrp_rules.py``).

Rezaei Jafari, Eberle, Khakzar & Nanda 2025, "RelP: Faithful and Efficient Circuit Discovery via
Relevance Patching" (arXiv 2508.21258; code github.com/FarnoushRJ/RelP). Each rule is a
*forward-pass-preserving* edit: the forward value is bit-identical, only the backward pass changes
(``value.detach() + (surrogate - surrogate.detach())``), so gradient x input becomes LRP relevance.

========================  ============  ==========================================================
rule                      name          edit
========================  ============  ==========================================================
:class:`LNRule`           ``"ln"``      LayerNorm/RMSNorm scale treated as a constant (Ali et al. 2022)
:class:`IdentityRule`     ``"identity"``  elementwise activation passes gradient phi(x)/x (Jafari et al. 2024)
:class:`HalfRule`         ``"half"``    gated product ``act(gate) * up`` splits relevance equally
:class:`AttentionRule`    ``"attention"``  attention pattern detached (AH-rule, Ali et al. 2022)
========================  ============  ==========================================================

On a ``TransformerBridge`` the rules go on TransformerLens hook points; on a plain ``nn.Module`` they go
on modules: ``nn.LayerNorm``/``nn.RMSNorm`` (LN), every module that computes an elementwise activation that is
not positively homogeneous, found by a probe of what it computes (:mod:`patching.relp_probe`: GELU, SiLU,
transformers' ``GELUActivation``, your own; ReLU and LeakyReLU already pass phi(x)/x), ``nn.Softmax`` (attention).
:func:`compile_rules` reports where each rule was applied and raises :class:`RuleError` when a rule that
was asked for by name applies nowhere -- RelP never silently becomes AtP. On a bridge it also rules what has no
hook point (:mod:`patching.relp_cover`: MoE shared experts, norms inside MLPs and attentions, attention output
gates, attention computed in an ``_attn`` method) and refuses by name, whatever ``strict``, what no rule covers:
state-space, recurrent and linear-attention mixers, and MoE expert layouts the rule-aware forward does not reproduce.

>>> hooks, applied = compile_rules(model, [LNRule(), IdentityRule()], strict={"ln", "identity"})  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from interp import engine
from interp.engine import Hook, Phase
from interp.engine.attention import (
    CALLS,
    NAME,
    attention_configs,
    attention_methods,
    detached_pattern_attention,
    detached_pattern_method,
)
from interp.errors import ConfigError, closest

from ._moe import layer_experts, moe_overrides
from .relp_cover import attention_gates, detached_per_layer_inputs, inner_modules, per_layer_input_layers
from .relp_cover import uncovered as uncovered_parts
from .relp_probe import activation_kind, changes_input, gated_product, norm_kind, norm_surrogate

__all__ = ["Rule", "LNRule", "IdentityRule", "HalfRule", "AttentionRule", "RULES", "DEFAULT_RULES", "RuleError",
           "RuleSet", "resolve_rules", "compile_rules"]

EPS = 1e-6
#: modules that pass their input through in eval mode: homogeneous, and not worth listing as activations
_NO_OPS = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


class RuleError(ConfigError):
    """A RelP rule that was asked for cannot be applied to this model."""


@dataclass(frozen=True)
class Rule:
    """Base of the RelP rules; ``name`` is how users switch it on (``rules=["ln", "half"]``)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""


@dataclass(frozen=True)
class LNRule(Rule):
    """LN-rule: the LayerNorm/RMSNorm scale is treated as a constant (``x_c / scale.detach() * w + b``)."""

    name: ClassVar[str] = "ln"
    description: ClassVar[str] = "normalisation scale detached"


@dataclass(frozen=True)
class IdentityRule(Rule):
    """Identity-rule: an elementwise activation passes gradient ``phi(x)/x`` (x stabilised by 1e-6)."""

    name: ClassVar[str] = "identity"
    description: ClassVar[str] = "activation gradient phi(x)/x"


@dataclass(frozen=True)
class HalfRule(Rule):
    """Half-rule: a gated product ``act(gate) * up`` gives each factor half of the relevance."""

    name: ClassVar[str] = "half"
    description: ClassVar[str] = "gated product split equally"


@dataclass(frozen=True)
class AttentionRule(Rule):
    """AH-rule: the attention pattern is detached (relevance flows through the values only)."""

    name: ClassVar[str] = "attention"
    description: ClassVar[str] = "attention pattern detached"


RULES: dict[str, type[Rule]] = {r.name: r for r in (LNRule, IdentityRule, HalfRule, AttentionRule)}
#: the rules of the paper's default configuration (``cfg.LRP_rules``); AH is implemented but off
DEFAULT_RULES = ("ln", "identity", "half")


def resolve_rules(rules: Sequence[str | Rule] | Mapping[str, bool] | None) -> tuple[list[Rule], set[str]]:
    """The rule objects to use and the names asked for explicitly (those must apply somewhere).

    ``None`` gives the defaults where they apply; a list of names or :class:`Rule` objects gives exactly
    those; a mapping ``{"attention": True, "identity": False}`` switches rules on and off from the defaults.

    Parameters
    ----------
    rules : Sequence[str or Rule] or Mapping[str, bool], optional
        None: the default rules (``ln``, ``identity``, ``half``) wherever they apply; a list of names or
        :class:`Rule` objects: exactly those; a mapping ``{"attention": True, "identity": False}``: rules
        switched on and off from the defaults.

    Returns
    -------
    rules, strict : list of Rule, set of str
        The rule objects, and the names asked for explicitly (a :class:`RuleError` where one applies nowhere).
    """
    if rules is None:
        return [RULES[n]() for n in DEFAULT_RULES], set()
    if isinstance(rules, Mapping):
        chosen = dict.fromkeys(DEFAULT_RULES, True)
        for key, on in rules.items():
            _check_name(key)
            chosen[key] = bool(on)
        names = [n for n, on in chosen.items() if on]
        return [RULES[n]() for n in names], {k for k, on in rules.items() if on}
    if isinstance(rules, (str, Rule)):
        rules = [rules]
    out: list[Rule] = []
    for rule in rules:
        if isinstance(rule, Rule):
            out.append(rule)
        else:
            _check_name(rule)
            out.append(RULES[rule]())
    return out, {r.name for r in out}


def _check_name(name: str) -> None:
    if name not in RULES:
        hint = closest(str(name), RULES)
        raise ConfigError(f"unknown RelP rule {name!r}; known rules: {sorted(RULES)}"
                          + (f" (did you mean {hint[0]!r}?)" if hint else ""))


@dataclass
class RuleSet:
    """Compiled rules for one model: engine hooks, forward replacements (MoE experts) and where each applies.

    Parameters
    ----------
    hooks : list of Hook
        The engine hooks that place the rules.
    overrides : list of tuple[torch.nn.Module, Callable]
        ``(module, forward)`` replacements (rule-aware MoE experts).
    applied : dict[str, list of str]
        ``{rule name: sites where it applies}``.
    contexts : list of Callable
        Context factories entered while the rules are installed.
    """

    hooks: list[Hook]
    overrides: list[tuple[nn.Module, Callable]]
    applied: dict[str, list[str]]
    contexts: list[Callable[[], contextlib.AbstractContextManager]] = field(default_factory=list)

    @contextlib.contextmanager
    def installed(self, model: nn.Module) -> Iterator[dict[str, list[str]]]:
        """Install the rules on ``model`` while the block runs; yields ``applied``.

        Parameters
        ----------
        model : torch.nn.Module
            The model the rules were compiled for.
        """
        with contextlib.ExitStack() as stack:
            for context in self.contexts:
                stack.enter_context(context())
            stack.enter_context(engine.overridden(self.overrides))
            stack.enter_context(engine.hooked(model, self.hooks))
            yield self.applied


def compile_rules(model: nn.Module, rules: Iterable[Rule], strict: set[str] = frozenset()) -> RuleSet:
    """The rules for ``model`` as a :class:`RuleSet` (``applied``: ``{rule name: sites where it applies}``).

    Raises :class:`RuleError` for a rule in ``strict`` that applies nowhere, and for a rule in ``strict``
    that cannot be applied to some part of the model it is meant for (e.g. an MoE expert layout the
    rule-aware forward does not reproduce).

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` or any ``nn.Module``.
    rules : Iterable[Rule]
        The rules to place (:func:`resolve_rules`).
    strict : set of str
        Names of rules that must apply (somewhere, and wherever they are meant to).
    """
    names = {r.name for r in rules}
    overrides: list[tuple[nn.Module, Callable]] = []
    contexts: list[Callable[[], contextlib.AbstractContextManager]] = []
    if names and (parts := uncovered_parts(model)):
        raise RuleError(f"RelP cannot rule this {type(model).__name__}: {'; '.join(parts[:4])}"
                        f"{' ...' if len(parts) > 4 else ''} {'is' if len(parts) == 1 else 'are'} not a norm, attention, "
                        "MLP or mixture of experts (e.g. a state-space, recurrent or linear-attention mixer), so no "
                        "LRP "
                        "rule covers what it computes and relevance would not be conserved. Use "
                        "patching.attribution_patching, or rules=() for RelP without rules (= AtP)")
    if engine.is_bridge(model):
        hooks, applied = _bridge_hooks(model, names)
        moe_layers = [layer for layer in range(engine.n_layers(model))
                      if engine.is_moe(model, layer) or layer_experts(model, layer) is not None]
        if moe_layers and names & {"identity", "half"}:
            overrides, covered, uncovered = moe_overrides(model, moe_layers, names, straight, _identity_surrogate)
            for layer in moe_layers:  # a shared expert's sigmoid gate (Qwen2-MoE) is a gate: constant backwards
                gate = f"blocks.{layer}.mlp.shared_expert_gate.hook_out"
                if gate in model.hook_dict:
                    hooks.append(Hook(gate, lambda g: g.detach(), Phase.DEFINE))
                    covered.append(gate)
            for name in names & {"identity", "half"}:
                applied[name] += covered
            if uncovered:  # their activations and gated products would pass plain gradient: refused, strict or not
                raise RuleError(f"RelP cannot rule the mixture-of-experts blocks {uncovered} of this "
                                f"{type(model).__name__}: they are not of the fused layout whose rule-aware forward "
                                "reproduces them (gate_up_proj, down_proj, act_fn: act(gate) * up per expert), so "
                                "relevance would not be conserved; use patching.attribution_patching, or drop "
                                "'identity' and 'half' from rules=")
        if "attention" in names and applied["attention"] and not _pattern_edits_reach(model):
            # the pattern hooks only observe (BERT, GPT-J): detach the pattern inside the model's attention function
            hooks = [h for h in hooks if not h.site.endswith(".attn.hook_pattern")]
            applied["attention"] = []
            if _swap_used(model, detached_pattern_attention):
                contexts.append(lambda: detached_pattern_attention(model))
                applied["attention"] = [f"{NAME} attention ({len(attention_configs(model))} config)"]
            elif attention_methods(model) and _swap_used(model, detached_pattern_method):
                contexts.append(lambda: detached_pattern_method(model))
                applied["attention"] = [f"{type(m).__name__}._attn on detached query/key"
                                        for m in attention_methods(model)]
            else:
                raise RuleError("the AH-rule (attention pattern detached) was asked for, but edits at hook_pattern do "
                                f"not reach this {type(model).__name__}'s forward pass and its attention neither goes "
                                "through transformers' AttentionInterface nor computes its pattern in an _attn(query, "
                                "key, value, mask) method; RelP cannot detach its pattern, so relevance would not be "
                                "conserved: drop 'attention' from rules=")
        if "attention" in names:
            for gate in attention_gates(model):
                hooks.append(Hook(gate, lambda y: y.detach(), Phase.DEFINE))
                applied["attention"].append(f"{gate} (output gate detached)")
        hooks += _cover_inner(model, names, applied)
    else:
        hooks, applied = _module_hooks(model, names)
        if "identity" in names and (plain_layers := per_layer_input_layers(model)):  # Gemma-4's per-layer inputs
            overrides += detached_per_layer_inputs(plain_layers)
            applied["identity"] += [f"{path} (per_layer_input detached)" for path, _, _ in plain_layers]
        if "attention" in names and not applied["attention"] and attention_configs(model) \
                and _swap_used(model, detached_pattern_attention):  # a transformers model used as a plain module
            contexts.append(lambda: detached_pattern_attention(model))
            applied["attention"] = [f"{NAME} attention ({len(attention_configs(model))} config)"]
        elif "attention" in names and not applied["attention"] and attention_methods(model) \
                and _swap_used(model, detached_pattern_method):  # GPT-J / GPT-Neo as plain modules
            contexts.append(lambda: detached_pattern_method(model))
            applied["attention"] = [f"{type(m).__name__}._attn on detached query/key" for m in attention_methods(model)]
    for name in sorted(names & strict):
        if not applied.get(name):
            raise RuleError(f"the RelP rule {name!r} ({RULES[name].description}) cannot be applied to this "
                            f"{type(model).__name__}: {_why_not(model, name)}; drop it from rules=")
    return RuleSet(hooks, overrides, {n: applied.get(n, []) for n in sorted(names)}, contexts)


def _cover_inner(model: nn.Module, names: set[str], applied: dict[str, list[str]]) -> list[Hook]:
    """Module rules on a bridge's modules that no hook point covers (:func:`patching.relp_cover.inner_modules`)."""
    inner = names & {"ln", "identity", "half"}
    if not inner:
        return []
    hooks, more = _module_hooks(model, inner, inner_modules(model))
    for name, sites in more.items():
        applied[name] += sites
    return hooks


def _why_not(model: nn.Module, name: str) -> str:
    bridge = engine.is_bridge(model)
    if name == "half":
        return "it has no gated MLP (act(gate) * up)" if bridge else ("no module is a gated MLP down(act(gate(x)) * "
                                                                       "up(x)) with gate_proj/up_proj/down_proj")
    if name == "identity":
        return ("it has no MLP activation hooks" if bridge else "no module computes an elementwise activation "
                "(a parameter-free module whose output has its input's shape and whose elements depend on one input "
                "element each); activations called as functions inside forward() cannot take the rule")
    if name == "ln":
        return "it has no LayerNorm/RMSNorm" + ("" if bridge else " modules")
    return "it has no attention pattern hooks" if bridge else "it has no nn.Softmax modules"


# --------------------------------------------------------------------------------------------- shared
def _stabilize(x: torch.Tensor) -> torch.Tensor:
    return x + EPS * torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def straight(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """Exactly ``value`` in the forward pass, the gradient of ``surrogate`` in the backward pass.

    Parameters
    ----------
    value : torch.Tensor
        The module's true output.
    surrogate : torch.Tensor
        A tensor of the same shape whose gradient the backward pass takes.
    """
    return value.detach() + (surrogate - surrogate.detach()).to(value.dtype)


def _identity_surrogate(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x * (y / _stabilize(x)).detach()


def _saver(box: dict, key: str, clone: bool = False) -> Callable[[torch.Tensor], None]:
    def save(x: torch.Tensor) -> None:
        box[key] = x.clone() if clone else x
    return save


# --------------------------------------------------------------------------------------------- bridges
def _norm_surrogate(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    xf = x.float() if x.dtype not in (torch.float32, torch.float64) else x
    rms = bool(getattr(module, "uses_rms_norm", False))
    xc = xf if rms else xf - xf.mean(-1, keepdim=True)
    original = getattr(module, "original_component", None)
    eps = getattr(original, "eps", None) or getattr(original, "variance_epsilon", None)
    eps = float(eps) if eps is not None else float(getattr(getattr(module, "config", None), "eps", 1e-5))
    out = xc / (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt().detach()
    weight = getattr(module, "weight", None) if not isinstance(original, nn.Identity) else None
    if isinstance(weight, torch.Tensor):
        out = out * ((1.0 + weight) if getattr(module, "uses_weight_offset", False) else weight)
    bias = getattr(original, "bias", None)
    if isinstance(bias, torch.Tensor) and not rms:
        out = out + bias
    return out


def _bridge_hooks(model: nn.Module, names: set[str]) -> tuple[list[Hook], dict[str, list[str]]]:
    points = set(model.hook_dict)
    hooks: list[Hook] = []
    applied: dict[str, list[str]] = {n: [] for n in names}
    if "ln" in names:
        for scale_hook in sorted(n for n in points if n.endswith(".hook_scale")):
            prefix = scale_hook[: -len(".hook_scale")]
            if f"{prefix}.hook_in" not in points or f"{prefix}.hook_out" not in points:
                continue
            module, box = model.get_submodule(prefix), {}
            hooks += [Hook(f"{prefix}.hook_in", _saver(box, "x"), Phase.READ),
                      Hook(f"{prefix}.hook_out", lambda out, box=box, module=module:
                           straight(out, _norm_surrogate(module, box.pop("x"))), Phase.DEFINE)]
            applied["ln"].append(prefix)
    if names & {"identity", "half"}:
        _mlp_hooks(model, names, points, hooks, applied)
    if "identity" in names and {"mlm_head.hook_out", "ln_final.hook_in"} <= points:
        # BERT's masked-LM head: ln_final(act(mlm_head(x))), the activation applied between the two hook points
        box: dict[str, torch.Tensor] = {}
        hooks += [Hook("mlm_head.hook_out", _saver(box, "x"), Phase.READ),
                  Hook("ln_final.hook_in", lambda y, box=box: straight(y, _identity_surrogate(box.pop("x"), y)),
                       Phase.DEFINE)]
        applied["identity"].append("mlm_head")
    if "identity" in names:
        _softcap_hooks(model, points, hooks, applied)
    if "attention" in names:
        for name in sorted(n for n in points if n.endswith(".attn.hook_pattern")):
            hooks.append(Hook(name, lambda p: p.detach(), Phase.DEFINE))
            applied["attention"].append(name)
    return hooks, applied


def _softcap_hooks(model: nn.Module, points: set[str], hooks: list[Hook], applied: dict[str, list[str]]) -> None:
    """Identity rule on a final logit soft cap ``s(z) = cap * tanh(z / cap)`` (Gemma-2), applied by the model after
    ``unembed.hook_out``: the hook keeps ``z`` and scales its gradient by ``(s(z)/z) / s'(z)``, so that the gradient
    through the cap is ``s(z)/z``. Checked first: the model's logits must be ``s(unembed.hook_out)``."""
    from interp.label.vocab import logit_transform

    caps = [value for _, how, value in logit_transform(model) if how == "softcap"]
    if len(caps) != 1 or "unembed.hook_out" not in points:
        return
    cap = caps[0]
    tokens = torch.randint(0, int(model.cfg.d_vocab), (1, 3), generator=torch.Generator().manual_seed(0))
    rec = engine.record(model, tokens, ["unembed.hook_out"])
    expected = cap * torch.tanh(rec.acts["unembed.hook_out"].float() / cap)
    if not torch.allclose(engine.output_tensor(rec.output).float(), expected, rtol=1e-3, atol=1e-3):
        return

    def rule(z: torch.Tensor) -> torch.Tensor:
        zf = z.float()
        t = torch.tanh(zf / cap)
        ratio = (cap * t / _stabilize(zf)) / (1.0 - t * t).clamp_min(1e-12)
        return straight(z, zf * ratio.detach())

    hooks.append(Hook("unembed.hook_out", rule, Phase.DEFINE))
    applied["identity"].append(f"unembed.hook_out (final logit soft cap {cap:g})")


def _mlp_prefixes(model: nn.Module, points: set[str]) -> list[str]:
    """Hook prefixes of the MLPs that take the MLP rules: dense MLPs (dense layers of MoE stacks included) and
    the shared experts of MoE blocks (Qwen2-MoE's ``shared_expert``, DeepSeek's ``shared_experts``)."""
    prefixes = []
    for layer in range(engine.n_layers(model)):
        if not engine.is_moe(model, layer):
            prefixes.append(f"blocks.{layer}.mlp")
            continue
        prefixes += [f"blocks.{layer}.mlp.{name}" for name in _SHARED_EXPERTS
                     if f"blocks.{layer}.mlp.{name}.hook_post" in points]
    return prefixes


#: names of the always-on experts of MoE blocks, next to the routed ones
_SHARED_EXPERTS = ("shared_expert", "shared_experts", "shared_mlp")


def _mlp_hooks(model: nn.Module, names: set[str], points: set[str], hooks: list[Hook],
               applied: dict[str, list[str]]) -> None:
    identity, half = "identity" in names, "half" in names
    for prefix in _mlp_prefixes(model, points):
        pre, post, linear = f"{prefix}.hook_pre", f"{prefix}.hook_post", f"{prefix}.hook_pre_linear"
        if pre not in points or post not in points:
            continue
        box: dict[str, torch.Tensor] = {}
        if linear in points:  # gated MLP: post = act(gate) * up
            act_fn = _gated_act_fn(model, prefix)
            hooks += [Hook(pre, _saver(box, "g"), Phase.READ), Hook(linear, _saver(box, "u"), Phase.READ)]

            def gated(h: torch.Tensor, box: dict = box, act_fn: Callable = act_fn) -> torch.Tensor:
                g, u = box.pop("g"), box.pop("u")
                a = act_fn(g)
                prod = (_identity_surrogate(g, a) if identity else a) * u
                value = a * u
                if not torch.equal(h, value):  # an elementwise scale between the product and hook_post (BitNet's
                    prod = prod * (h / _stabilize(value)).detach()  # ffn_sub_norm, its scale detached: the LN rule)
                return straight(h, 0.5 * prod if half else prod)

            hooks.append(Hook(post, gated, Phase.DEFINE))
            for name in names & {"identity", "half"}:
                applied[name].append(post)
        elif identity:
            hooks += [Hook(pre, _saver(box, "x"), Phase.READ),
                      Hook(post, lambda y, box=box: straight(y, _identity_surrogate(box.pop("x"), y)), Phase.DEFINE)]
            applied["identity"].append(post)


def _gated_act_fn(model: nn.Module, prefix: str) -> Callable[[torch.Tensor], torch.Tensor]:
    mlp = model.get_submodule(prefix)
    fn = getattr(getattr(mlp, "original_component", None), "act_fn", None)
    if callable(fn):
        return fn
    from transformer_lens.model_bridge.generalized_components.gated_mlp import resolve_activation_fn

    return resolve_activation_fn(model.cfg)


# keyed by the model itself, weakly: an id() key outlives its model, and a new model at the same address would get
# the old model's answer (a wrong rule placement, a silent wrong number)
_REACH: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _swap_used(model: nn.Module, swap: Callable) -> bool:
    """Whether the model's attention goes through an attention swap of :mod:`interp.engine.attention` (it ran)."""
    before = CALLS[0]
    vocab = getattr(getattr(model, "cfg", None), "d_vocab", None) or getattr(getattr(model, "config", None),
                                                                            "vocab_size", None)
    if not vocab:
        return False
    tokens = torch.randint(0, int(vocab), (1, 3), generator=torch.Generator().manual_seed(0))
    try:
        with swap(model), torch.no_grad():
            engine.run(model, tokens)
    except Exception:  # noqa: BLE001 - a model the switch cannot run is one the rule cannot cover
        return False
    return CALLS[0] > before


def _pattern_edits_reach(model: nn.Module) -> bool:
    """Whether an edit at ``attn.hook_pattern`` changes the forward pass (not on BERT-style bridges)."""
    if model not in _REACH:
        tokens = torch.randint(0, int(model.cfg.d_vocab), (1, 5), generator=torch.Generator().manual_seed(0))
        _REACH[model] = engine.edits_reach(model, "blocks.0.attn.hook_pattern", tokens)
    return _REACH[model]


# --------------------------------------------------------------------------------------------- modules
def _module_norm_surrogate(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    dims = tuple(range(-len(module.normalized_shape), 0))
    rms = isinstance(module, getattr(nn, "RMSNorm", ()))
    xc = x if rms else x - x.mean(dims, keepdim=True)
    eps = module.eps if module.eps is not None else torch.finfo(x.dtype).eps
    out = xc / (xc.pow(2).mean(dims, keepdim=True) + eps).sqrt().detach()
    if getattr(module, "weight", None) is not None:
        out = out * module.weight
    if getattr(module, "bias", None) is not None:
        out = out + module.bias
    return out


def _module_hooks(model: nn.Module, names: set[str], modules: Iterable[tuple[str, nn.Module]] | None = None
                  ) -> tuple[list[Hook], dict[str, list[str]]]:
    """Rules on the modules of a plain ``nn.Module`` (or on ``modules``, ``(path, module)`` pairs of a bridge that
    no hook point covers)."""
    hooks: list[Hook] = []
    applied: dict[str, list[str]] = {n: [] for n in names}
    norms = (nn.LayerNorm,) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())
    for path, module in (model.named_modules() if modules is None else modules):
        if not path:
            continue
        box: dict[str, torch.Tensor] = {}
        if "ln" in names and isinstance(module, norms):
            hooks += [Hook(f"{path}:input", _saver(box, "x"), Phase.READ, every_call=True),
                      Hook(path, lambda out, box=box, module=module:
                           straight(out, _module_norm_surrogate(module, box.pop("x"))), Phase.DEFINE)]
            applied["ln"].append(path)
        elif "ln" in names and (found := norm_kind(module)) is not None:  # RMSNorm/LayerNorm of another class
            hooks += [Hook(f"{path}:input", _saver(box, "x"), Phase.READ, every_call=True),
                      Hook(path, lambda out, box=box, module=module, found=found:
                           straight(out, norm_surrogate(module, box.pop("x"), found)), Phase.DEFINE)]
            applied["ln"].append(path)
        elif "identity" in names and (kind := activation_kind(module)) == "smooth":
            hooks += [Hook(f"{path}:input", _saver(box, "x", clone=changes_input(module)), Phase.READ, every_call=True),
                      Hook(path, lambda y, box=box: straight(y, _identity_surrogate(box.pop("x"), y)), Phase.DEFINE)]
            applied["identity"].append(path)
        elif "identity" in names and kind == "homogeneous" and not isinstance(module, _NO_OPS):
            applied["identity"].append(path)  # positively homogeneous: its gradient already is phi(x)/x
        elif "attention" in names and isinstance(module, nn.Softmax):
            hooks.append(Hook(path, lambda p: p.detach(), Phase.DEFINE))
            applied["attention"].append(path)
        elif "half" in names and (down := gated_product(module)) is not None:
            # Half rule on down(act(gate x) * up x): halve the gradient of the product, shared by both factors
            hooks.append(Hook(f"{path}.{down}:input", lambda h: straight(h, 0.5 * h), Phase.DEFINE))
            applied["half"].append(f"{path}.{down}:input")
    return hooks, applied


def describe(applied: Mapping[str, Sequence[str]]) -> str:
    """One line per rule: where it was applied.

    Parameters
    ----------
    applied : Mapping[str, Sequence[str]]
        ``{rule name: sites where it applies}``.
    """
    return "\n".join(f"{name}: {len(sites)} sites" + (f" ({sites[0]} ...)" if sites else "")
                     for name, sites in applied.items())

