"""The hook engine: the one place that runs models with hooks.

Every analysis of the library -- capture, interventions, activation and attribution patching, RelP,
integrated gradients, neuron paths, the label pipeline, SAE splicing and steering -- runs models through
these few verbs (after nnsight's single interleaver):

* **sites** -- :func:`resolve_sites` (hook names of a ``TransformerBridge``, module paths of any
  ``nn.Module`` with ``":input"``, globs), site kinds (:func:`kind_sites`: ``"resid_pre"`` -> one hook per
  layer), :func:`layout` (which axis is ``unit``, ``head``, ``pos``), :func:`layer_of`; spellings of one call of
  a reused module (``layer1.0.relu#1``) and of an element of a structured output (``rnn:output[1]``), checked
  on a probe pass with the batch axis and a bridge's head layout (:mod:`interp.engine.views`);
* **inputs** -- :func:`batches` (texts, tokens, images, arrays, Datasets, DataLoaders; padding masks),
  :func:`to_tokens`, :func:`forward`;
* **hooks** -- :class:`Hook` and :func:`hooked`: any number of edits and reads at a site, composed in the
  documented order of :class:`Phase` (rules, then edits, then reads);
* **verbs** -- :func:`run`, :func:`record` (with ``stop=True`` the pass ends after the last site),
  :func:`gradients` (value and gradient of a metric at sites);
* **shortcuts** -- :class:`SharedPrefix` (KV cache of a shared token prefix) and :class:`BlockReplay`
  (replay of the blocks below a patch) for sweeps of many patched copies of one batch.

Only :mod:`interp.engine.hooks` touches torch or TransformerLens hook APIs.
"""

from __future__ import annotations

from .hooks import Hook, Phase, StopForward, hooked, observe_modules, overridden, repair_block_outputs
from .inputs import (
    Batch,
    batches,
    check_pair,
    forward,
    model_device,
    n_samples,
    output_tensor,
    repeat,
    to_tokens,
    tokenize,
)
from .run import Gradients, Recording, edits_reach, gradients, record, run, scalar
from .shortcuts import BlockReplay, ReadTokens, SharedPrefix, agrees
from .sites import (
    KIND_ALIASES,
    SITE_KINDS,
    canonical_kind,
    encoder_decoder_stacks,
    is_bridge,
    is_kind,
    is_moe,
    kind_hook,
    kind_sites,
    layer_of,
    layout,
    n_layers,
    resolve_site,
    resolve_sites,
    site_names,
    split_site,
)
from .split_inputs import split_inputs
from .views import SiteRef, View, format_site, parse_site

__all__ = [
    "Hook", "Phase", "StopForward", "hooked", "observe_modules", "overridden", "repair_block_outputs",
    "Batch", "batches", "check_pair", "forward", "model_device", "n_samples", "output_tensor", "repeat",
    "to_tokens", "tokenize",
    "Gradients", "Recording", "edits_reach", "gradients", "record", "run", "scalar",
    "BlockReplay", "ReadTokens", "SharedPrefix", "agrees", "split_inputs",
    "KIND_ALIASES", "SITE_KINDS", "canonical_kind", "is_bridge", "is_kind", "is_moe", "kind_hook", "kind_sites",
    "layer_of", "layout", "n_layers", "resolve_site", "resolve_sites", "site_names", "split_site",
    "encoder_decoder_stacks", "SiteRef", "View", "format_site", "parse_site",
]
