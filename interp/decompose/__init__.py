"""Decompositions of activations into sparse features: SAEs, SNMF and NMF.

scikit-learn style estimators (``fit`` returns self, learned state ends in ``_``, ``transform``,
``inverse_transform``, ``save``/``load``) that fit on :class:`interp.Activations`, arrays, an
:class:`interp.store.ActivationStore` or any iterable of minibatches:

* :class:`ReLUSAE`, :class:`TopKSAE`, :class:`BatchTopKSAE`, :class:`JumpReLUSAE` (sparse autoencoders);
* :class:`SNMF` (semi-nonnegative MF after Shafran, Geiger & Geva 2025), :class:`HierarchicalSNMF` (their
  multi-level variant) and :class:`NMF`; their steering/detection protocol is
  :func:`interp.decompose.steering.snmf_evaluation`;
* :func:`train`: several SAEs (sites, widths) from one pass over the data, on one process or on
  several ranks under ``torchrun`` (data parallel, or with the latents sharded across ranks).

Reading components: :func:`top_activating`, :func:`steer`, :func:`find_strength` (the output side of a
feature: :func:`interp.label.vocab_projection` with ``directions=``); metrics: :func:`reconstruction_metrics`,
:func:`spliced_lm_metrics`; recordings: :func:`behaviour_correlation`, :func:`top_loading`,
:func:`find_assemblies` (neural assemblies) and :func:`match_assemblies`; shared formats:
:func:`save_saelens`/:func:`load_saelens` (SAELens folders) and :func:`save_sparsify`/:func:`load_sparsify`.

>>> from interp.decompose import TopKSAE
>>> sae = TopKSAE(n_components=2048, k=32).fit(acts)   # doctest: +SKIP
"""

from __future__ import annotations

from ._base import Decomposition, NegativeValueError, NotFittedError, load
from ._training import train
from .assemblies import Assemblies, AssemblyMatch, find_assemblies, marchenko_pastur_bound, match_assemblies
from .formats import load_saelens, load_sparsify, save_saelens, save_sparsify
from .hsnmf import HierarchicalSNMF
from .metrics import ReconstructionMetrics, SplicedLMMetrics, reconstruction_metrics, spliced_lm_metrics
from .nmf import NMF, SNMF
from .read import find_strength, steer, steered_generate, steering_kl, top_activating
from .recordings import behaviour_components, behaviour_correlation, circular_shift_correlation, top_loading
from .sae import BatchTopKSAE, JumpReLUSAE, ReLUSAE, SparseAutoencoder, TopKSAE
from .synthetic import best_match_cosine, planted_assemblies, planted_features

__all__ = [
    "Decomposition",
    "SparseAutoencoder",
    "ReLUSAE",
    "TopKSAE",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "SNMF",
    "save_saelens",
    "load_saelens",
    "save_sparsify",
    "load_sparsify",
    "HierarchicalSNMF",
    "NMF",
    "train",
    "load",
    "NegativeValueError",
    "NotFittedError",
    "ReconstructionMetrics",
    "SplicedLMMetrics",
    "reconstruction_metrics",
    "spliced_lm_metrics",
    "planted_features",
    "planted_assemblies",
    "find_assemblies",
    "Assemblies",
    "match_assemblies",
    "AssemblyMatch",
    "marchenko_pastur_bound",
    "best_match_cosine",
    "top_activating",
    "steer",
    "steering_kl",
    "find_strength",
    "steered_generate",
    "behaviour_components",
    "behaviour_correlation",
    "circular_shift_correlation",
    "top_loading",
]
