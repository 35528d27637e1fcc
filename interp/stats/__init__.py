"""The one home of nulls and intervals: label, similarity, decompose and patching all use it.

One calling style everywhere: ``groups=`` (a sample-coordinate name of an
:class:`~interp.Activations`, or one label per sample: trials, subjects, recordings),
``n_permutations=``, ``n_bootstraps=``, ``seed=``, ``alpha=`` (the significance level; intervals are
``1 - alpha``).

Nulls (:mod:`interp.stats.nulls`) are index arrays ``(n_permutations, n)``, built vectorised:

* ``"permutation"``: :func:`permutations` (exchangeable samples, e.g. independent stimuli);
* ``"group"``: :func:`group_permutations` (whole trials or subjects swap; with ``groups=`` this is
  the default of every test in the library);
* ``"circular"``: :func:`circular_shifts` (time series: rotate by at least ``min_shift``, within
  groups; the default for a time series without groups);
* ``"block"``: :func:`block_permutations` (permute blocks of consecutive samples).

:func:`choose_null` resolves ``null="auto"`` for generic resampling tests (groups -> whole groups; a
time series, or samples whose autocorrelation makes them non-exchangeable -> circular shifts;
otherwise permutation). The label statistics use :func:`select_null` (:mod:`interp.stats.design`),
which reads the design from the data: values constant within trials -> the trials' values are
permuted (trials of any length); trials that restart -> whole trials swap; otherwise, where no
resampling is exact, the autocorrelation-corrected Wald test ``"effective_n"``
(:func:`autocorrelated_wald`, :mod:`interp.stats.autocorr`), whose small p-values stay valid where a
circular shift's do not.
Resampling: :func:`bootstrap_indices`, :func:`bootstrap_counts` (sample or grouped). Inference
(:mod:`interp.stats.inference`): :func:`p_value` (with the +1 correction), :func:`benjamini_hochberg`,
:func:`t_interval`, :func:`percentile_interval`, and the generic :func:`permutation_test` and
:func:`bootstrap`. Angles (:mod:`interp.stats.circular`): :func:`circular_mean`,
:func:`resultant_length`, :func:`rayleigh_test`. Clusters over time (:mod:`interp.stats.clusters`):
:func:`cluster_permutation_test`, :func:`cluster_test` (Maris & Oostenveld 2007).

>>> import numpy as np
>>> from interp import stats
>>> trial = np.repeat(np.arange(10), 30)                       # 10 trials of 30 samples
>>> stats.null_indices(300, "group", groups=trial, n_permutations=500).shape
(500, 300)
>>> stats.benjamini_hochberg([0.001, 0.02, 0.5]).round(3).tolist()
[0.003, 0.03, 0.5]
"""

from __future__ import annotations

from .autocorr import (
    DF_SCALE,
    autocorrelated_moments,
    autocorrelated_wald,
    hac_moments,
    wald_p_value,
    weighted_mean_variance,
)
from .circular import circular_mean, rayleigh_test, resultant_length, wrap_degrees
from .clusters import ClusterResult, cluster_permutation_test, cluster_test
from .design import (
    EFFECTIVE_N,
    TESTS,
    boundary_correlation,
    constant_within,
    sample_layout,
    select_null,
    time_positions,
    trial_serial_dependence,
    value_columns,
)
from .inference import (
    ALTERNATIVES,
    BootstrapResult,
    PermutationResult,
    benjamini_hochberg,
    bootstrap,
    p_value,
    percentile_interval,
    permutation_test,
    t_interval,
)
from .nulls import (
    NULLS,
    block_permutations,
    blocks,
    bootstrap_counts,
    bootstrap_indices,
    choose_null,
    circular_shifts,
    group_permutations,
    is_time_series,
    lag1_autocorrelation,
    null_indices,
    permutations,
    resolve_groups,
)

__all__ = [
    "NULLS", "ALTERNATIVES", "resolve_groups", "permutations", "group_permutations", "circular_shifts",
    "block_permutations", "blocks", "null_indices", "choose_null", "is_time_series", "lag1_autocorrelation",
    "bootstrap_indices", "bootstrap_counts", "p_value", "benjamini_hochberg", "t_interval", "percentile_interval",
    "permutation_test", "bootstrap", "PermutationResult", "BootstrapResult", "circular_mean", "resultant_length",
    "rayleigh_test", "wrap_degrees", "cluster_permutation_test", "cluster_test", "ClusterResult",
    "autocorrelated_moments", "autocorrelated_wald", "wald_p_value", "EFFECTIVE_N", "TESTS", "boundary_correlation",
    "constant_within", "select_null", "trial_serial_dependence", "value_columns", "sample_layout", "hac_moments",
    "time_positions", "weighted_mean_variance", "DF_SCALE",
]
