"""Which modules of a plain ``nn.Module`` take RelP's Identity rule: found by what they compute, not by class name.

The Identity rule (Jafari et al. 2024) makes an elementwise activation ``phi`` pass gradient ``phi(x)/x``, so that
``x * grad = phi(x)``: relevance is conserved through it. A module takes the rule when a probe on random inputs
shows that it is

* **deterministic** and **shape-preserving** (output shape = input shape),
* **elementwise**: perturbing one input element changes only that output element, and the values do not depend
  on the tensor's shape (a softmax or a norm fails this),
* **not positively homogeneous**: ``phi(a x) != a phi(x)`` for some ``a > 0``. A positively homogeneous ``phi``
  (ReLU, LeakyReLU, identity, dropout in eval mode, a constant scale) already has gradient ``phi(x)/x`` (Euler),
  so the rule changes nothing there; every other elementwise function -- GELU, SiLU, tanh, transformers'
  ``GELUActivation``, a user's own ``x * sigmoid(1.7 x)``, and also piecewise-linear ones with an offset such as
  Hardtanh -- needs the rule for relevance to be conserved.

Modules whose non-linearities run inside one fused kernel (``nn.RNN``/``GRU``/``LSTM``: their sigmoid and tanh
gates) leave no place for a rule; :func:`opaque_modules` names them so that RelP can say so instead of quietly
being AtP there.

>>> activation_kind(nn.GELU()), activation_kind(nn.ReLU()), activation_kind(nn.Linear(3, 3))   # doctest: +SKIP
('smooth', 'homogeneous', None)
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["activation_kind", "opaque_modules", "changes_input", "norm_kind", "norm_surrogate", "gated_product"]

_OPAQUE = (nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention, nn.Transformer, nn.TransformerEncoderLayer,
           nn.TransformerDecoderLayer)


def _probe(module: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    try:
        with torch.no_grad():
            y = module(x.clone())
    except Exception:  # noqa: BLE001 - a module that cannot take a plain tensor is not an elementwise activation
        return None
    return y if isinstance(y, torch.Tensor) and y.shape == x.shape and y.is_floating_point() else None


def activation_kind(module: nn.Module) -> str | None:
    """``"smooth"`` (an elementwise activation that takes the Identity rule), ``"homogeneous"`` (elementwise with
    gradient already ``phi(x)/x``) or None (not a parameter-free elementwise function, or not deterministic).

    Parameters
    ----------
    module : torch.nn.Module
        The module probed (run on a small random input).
    """
    if next(module.children(), None) is not None or next(module.parameters(), None) is not None:
        return None
    if isinstance(module, _OPAQUE) or module.training and isinstance(module, nn.modules.dropout._DropoutNd):
        return None
    gen = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(3, 5, 4, generator=gen)
    y = _probe(module, x)
    if y is None or not torch.isfinite(y).all():
        return None
    again, flat = _probe(module, x), _probe(module, x.reshape(-1))
    if again is None or flat is None or not torch.equal(again, y) or not torch.allclose(flat.reshape(y.shape), y):
        return None  # random, or not the same function of each element whatever the shape (softmax, norms)
    for where in ((0, 0, 0), (1, 2, 3), (2, 4, 1)):
        nudged = x.clone()
        nudged[where] += 0.37
        z = _probe(module, nudged)
        if z is None:
            return None
        changed = z != y
        changed[where] = False
        if changed.any():
            return None  # one input element moved other outputs: not elementwise
    for a in (2.0, 0.5):
        scaled = _probe(module, a * x)
        if scaled is None or not torch.allclose(scaled, a * y, rtol=1e-5, atol=1e-6):
            return "smooth"
    return "homogeneous"


def changes_input(module: nn.Module) -> bool:
    """Whether ``module`` writes into its input (an in-place activation): its input must be copied before it runs.

    Parameters
    ----------
    module : torch.nn.Module
        The module probed (run on a small random input; a module that fails on it counts as in-place).
    """
    if getattr(module, "inplace", False):
        return True
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    kept = x.clone()
    try:
        with torch.no_grad():
            module(x)
    except Exception:  # noqa: BLE001 - the probe in activation_kind already ran it; be safe
        return True
    return not torch.equal(x, kept)


def opaque_modules(model: nn.Module) -> list[str]:
    """Paths of modules whose non-linearities run inside one kernel, out of the rules' reach (RNN, GRU, LSTM,
    ``nn.MultiheadAttention`` ...).

    Parameters
    ----------
    model : torch.nn.Module
        The model whose submodules are listed.
    """
    return [path for path, module in model.named_modules() if path and isinstance(module, _OPAQUE)]


def _normalized(x: torch.Tensor, rms: bool, eps: float) -> torch.Tensor:
    xc = x if rms else x - x.mean(-1, keepdim=True)
    return xc / (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def norm_kind(module: nn.Module) -> tuple[str, bool, float] | None:
    """``("rms" | "ln", weight offset, eps)`` when ``module`` computes an RMSNorm or LayerNorm over its last axis
    (with gain ``w`` or Gemma's ``1 + w``, and the module's ``bias`` for LayerNorm), checked on a probe; None
    otherwise. Finds the norms of models used as plain modules whatever their class (``LlamaRMSNorm`` ...).

    Parameters
    ----------
    module : torch.nn.Module
        The module probed (run on a small random input of its weight's width; it needs an ``eps`` and a 1-D
        ``weight``, or no parameters at all: a norm without a gain, probed at a width of 8).
    """
    weight = getattr(module, "weight", None)
    if next(module.children(), None) is not None:
        return None
    if weight is None and next(module.parameters(), None) is None:
        # a norm without a gain (Gemma-4's value norm ``v_norm``, ``with_scale=False``): probed at a width of 8
        width, device, dtype, offsets = 8, None, torch.float32, (False,)
    elif isinstance(weight, torch.Tensor) and weight.ndim == 1:
        width, device, dtype, offsets = weight.shape[0], weight.device, weight.dtype, (False, True)
    else:
        return None
    eps = next((float(getattr(module, a)) for a in ("variance_epsilon", "eps", "epsilon")
                if isinstance(getattr(module, a, None), (int, float))), None)
    if eps is None:
        return None
    gen = torch.Generator().manual_seed(2)
    x = (2.0 * torch.randn(3, 4, width, generator=gen) + 0.5).to(device, dtype)
    y = _probe(module, x)
    if y is None:
        return None
    bias = getattr(module, "bias", None)
    for kind in ("rms", "ln"):
        for offset in offsets:
            gain = 1.0 if weight is None else ((1.0 + weight) if offset else weight).float()
            expected = _normalized(x.float(), kind == "rms", eps) * gain
            if kind == "ln" and isinstance(bias, torch.Tensor):
                expected = expected + bias.float()
            if torch.allclose(y.float(), expected, rtol=1e-4, atol=1e-5):
                return kind, offset, eps
    return None


def norm_surrogate(module: nn.Module, x: torch.Tensor, kind: tuple[str, bool, float]) -> torch.Tensor:
    """The LN rule's surrogate for a norm found by :func:`norm_kind`: the scale ``1/rms`` detached.

    Parameters
    ----------
    module : torch.nn.Module
        The norm (its ``weight`` and, for LayerNorm, ``bias``).
    x : torch.Tensor
        The norm's input.
    kind : tuple of (str, bool, float)
        What :func:`norm_kind` returned: ``("rms" | "ln", weight offset, eps)``.
    """
    rms, offset, eps = kind[0] == "rms", kind[1], kind[2]
    xf = x.float()
    xc = xf if rms else xf - xf.mean(-1, keepdim=True)
    out = xc / (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt().detach()
    weight = getattr(module, "weight", None)
    if weight is not None:
        out = out * ((1.0 + weight) if offset else weight)
    bias = getattr(module, "bias", None)
    return out + bias if isinstance(bias, torch.Tensor) and not rms else out


#: child names of gated MLPs, ``down(act(gate(x)) * up(x))``: (gate, up, down, activation)
_GATED_NAMES = (("gate_proj", "up_proj", "down_proj", "act_fn"), ("w1", "w3", "w2", "act_fn"), ("w1", "w3", "w2", "act"))


def gated_product(module: nn.Module) -> str | None:
    """The child whose input is the gated product ``act(gate(x)) * up(x)`` of a gated MLP (``"down_proj"``), when
    a probe confirms that ``module(x) == down(act(gate(x)) * up(x))``; None otherwise.

    Parameters
    ----------
    module : torch.nn.Module
        The module probed (run on a small random input).
    """
    for gate, up, down, act in _GATED_NAMES:
        parts = [getattr(module, name, None) for name in (gate, up, down)]
        fn = getattr(module, act, None)
        if not all(isinstance(p, nn.Linear) for p in parts) or not callable(fn):
            continue
        g, u, d = parts
        x = torch.randn(2, 3, g.in_features, generator=torch.Generator().manual_seed(3)).to(g.weight)
        y = _probe(module, x)
        with torch.no_grad():
            expected = d(fn(g(x)) * u(x))
        if y is not None and y.shape == expected.shape and torch.allclose(y, expected, rtol=1e-4, atol=1e-5):
            return down
    return None
