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
influence pattern as the authors' code computes it (``method="mean_gradient"``, ``path/influence_pattern.py``:
per class, the argmax of the step- and sample-averaged gradient; the default baseline), random paths, and
(``method="influence"``) our chain-rule reading of the paper's Algorithm 2 (Lu et al. 2021, "Influence
Patterns for Explaining Information Flow in BERT"), which is not what the authors run.

Evaluation as the authors run it (NeuronPath commit 5f93d0b): the headline of a manipulation is the
probability ratio ``p_edit / p_clean`` per image averaged per class (``plot_probability_deviation.ipynb``;
:meth:`PathComparison.by_class`); path similarity is the cosine of class x neuron frequency vectors
(``experiments/similarity/pair-sim.py``; :func:`frequency_similarity`); pruning keeps each class's most
frequent path neurons and zeroes a random fraction of the others (``topk/``; :func:`prune`).

Example
-------
>>> paths = find_paths(model, images, labels, sites=mlp_sites(model), position=0)   # doctest: +SKIP
>>> paths.jas                      # (n_samples,) Joint Attribution Score of each path
>>> cmp = compare_paths(model, images, labels, sites=mlp_sites(model), position=0)  # doctest: +SKIP
>>> cmp.means()                    # mean change in P(target) with 95% CIs, ours vs each baseline
>>> rep = Report("Neuron paths"); rep.add(cmp); rep.add(path_similarity(paths, labels))  # doctest: +SKIP
"""

from __future__ import annotations

from .lm import FACTUAL_PROMPTS, lm_inputs
from .manipulation import PathComparison, compare_paths, manipulate, prune
from .results import NeuronPaths, path_diagram
from .runner import PassCounter, mlp_sites
from .search import METHODS, find_paths, joint_attribution_score
from .similarity import FrequencySimilarity, PathSimilarity, frequency_similarity, path_similarity

__all__ = [
    "NeuronPaths", "PathComparison", "PathSimilarity", "PassCounter", "mlp_sites", "find_paths",
    "joint_attribution_score", "manipulate", "compare_paths", "path_similarity", "path_diagram", "METHODS",
    "FACTUAL_PROMPTS", "lm_inputs", "prune", "FrequencySimilarity", "frequency_similarity",
]
