"""Synthetic data with planted ground truth: sparse features (for SAEs/SNMF) and neural assemblies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from ..tensor import Activations


@dataclass
class PlantedFeatures:
    """Data ``X = codes @ features`` (plus noise) with known ``features`` ``(n_features, n_units)``.

    Parameters
    ----------
    X : Activations
        The data ``(sample, unit)``.
    features : torch.Tensor
        The planted unit-norm features ``(n_features, n_units)``.
    codes : torch.Tensor
        The planted codes ``(n_samples, n_features)``.
    """

    X: Activations
    features: torch.Tensor
    codes: torch.Tensor


def planted_features(n_samples: int = 4000, n_units: int = 64, n_features: int = 16, active: int = 3,
                     unit_fraction: float = 0.25, noise: float = 0.01, seed: int = 0) -> PlantedFeatures:
    """Sparse non-negative codes over unit-norm, mixed-sign features that each touch a fraction of the units.

    Each sample activates about ``active`` features with exponential magnitudes; each feature has
    ``round(unit_fraction * n_units)`` (at least 1) non-zero weights (the neuron groups SNMF assumes), so every SAE
    variant and SNMF should find them.

    Parameters
    ----------
    n_samples : int, optional
        Rows (default 4000).
    n_units : int, optional
        Columns (default 64).
    n_features : int, optional
        Planted features (default 16).
    active : int, optional
        Expected active features per sample (default 3): each is on with probability ``active / n_features``.
    unit_fraction : float, optional
        Fraction of units each feature touches (default 0.25; at least one unit).
    noise : float, optional
        S.d. of the added Gaussian noise (default 0.01).
    seed : int, optional
        Seed of the torch generator (default 0).
    """
    gen = torch.Generator().manual_seed(seed)
    support = max(1, int(round(unit_fraction * n_units)))
    features = torch.zeros(n_features, n_units)
    for i in range(n_features):
        units = torch.randperm(n_units, generator=gen)[:support]
        features[i, units] = torch.randn(support, generator=gen)
    features = features / features.norm(dim=1, keepdim=True)
    on = torch.rand(n_samples, n_features, generator=gen) < active / n_features
    magnitude = -torch.log(torch.rand(n_samples, n_features, generator=gen).clamp_min(1e-12)) + 0.5
    codes = on * magnitude
    X = codes @ features + noise * torch.randn(n_samples, n_units, generator=gen)
    acts = Activations(X, ("sample", "unit"), {"unit": {"name": [f"u{i}" for i in range(n_units)]}},
                       {"source": "planted_features", "kind": "synthetic"})
    return PlantedFeatures(acts, features, codes)


def best_match_cosine(true: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    """For each true direction (rows), the largest |cosine| with any learned direction (rows).

    Parameters
    ----------
    true : torch.Tensor
        True directions, one per row.
    learned : torch.Tensor
        Learned directions, one per row, with the same number of columns.
    """
    a = torch.nn.functional.normalize(true.double(), dim=1)
    b = torch.nn.functional.normalize(learned.detach().double().cpu(), dim=1)
    return (a @ b.T).abs().max(dim=1).values


@dataclass
class PlantedAssemblies:
    """A calcium-like recording with known assemblies: ``members[j]`` are the 0-based units of assembly ``j``.

    Parameters
    ----------
    recording : Activations
        The dF/F recording ``(sample, unit)`` with unit coordinates ``name``, ``x``, ``y``.
    members : list of list of int
        The units of each assembly.
    events : numpy.ndarray
        Boolean ``(n_samples, n_assemblies)``: when each assembly was activated.
    """

    recording: Activations
    members: list[list[int]]
    events: np.ndarray


def planted_assemblies(n_units: int = 60, n_samples: int = 3000, n_assemblies: int = 4, size: int = 8,
                       event_rate: float = 0.02, p_member: float = 0.8, background: float = 0.01, tau: float = 5.0,
                       noise: float = 0.15, dt: float = 0.1, field_um: float = 200.0, seed: int = 0) -> PlantedAssemblies:
    """Synthetic dF/F with planted, spatially compact assemblies (the ground truth of assembly tests).

    Units sit uniformly in a ``field_um`` x ``field_um`` field (unit coordinates ``x``, ``y`` in µm).
    Each assembly takes the ``size`` still-unassigned units nearest to a random centre (assemblies are
    disjoint and compact, as in the zebrafish tectum). Every time bin, each assembly activates with
    probability ``event_rate``, and then each member spikes with probability ``p_member``; every unit
    also spikes on its own with probability ``background``. Spikes are convolved with an exponential
    calcium kernel (decay ``tau`` bins, amplitude 1) and Gaussian noise of s.d. ``noise`` is added, so
    the trace goes below zero like real dF/F.

    Parameters
    ----------
    n_units : int, optional
        Units (default 60); at least ``n_assemblies * size``.
    n_samples : int, optional
        Time bins (default 3000).
    n_assemblies : int, optional
        Planted assemblies (default 4).
    size : int, optional
        Units per assembly (default 8).
    event_rate : float, optional
        Probability per bin that an assembly activates (default 0.02).
    p_member : float, optional
        Probability that a member spikes in an assembly event (default 0.8).
    background : float, optional
        Probability per bin of an independent spike of every unit (default 0.01).
    tau : float, optional
        Decay of the calcium kernel in bins (default 5).
    noise : float, optional
        S.d. of the Gaussian noise (default 0.15).
    dt : float, optional
        Bin width in seconds, for the ``time`` coordinate and ``attrs["dt"]`` (default 0.1).
    field_um : float, optional
        Side of the square field in µm (default 200).
    seed : int, optional
        Seed of the NumPy generator (default 0).

    >>> planted = planted_assemblies(seed=1)
    >>> planted.recording.shape, [len(m) for m in planted.members]
    ((3000, 60), [8, 8, 8, 8])
    """
    if n_assemblies * size > n_units:
        raise ConfigError(f"{n_assemblies} disjoint assemblies of {size} units need at least {n_assemblies * size} units")
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, field_um, size=(n_units, 2))
    free = np.ones(n_units, dtype=bool)
    members: list[list[int]] = []
    for _ in range(n_assemblies):
        centre = rng.uniform(0.2 * field_um, 0.8 * field_um, size=2)
        distance = np.where(free, np.linalg.norm(xy - centre, axis=1), np.inf)
        chosen = np.sort(np.argsort(distance, kind="stable")[:size])
        free[chosen] = False
        members.append([int(i) for i in chosen])
    events = rng.random((n_samples, n_assemblies)) < event_rate
    spikes = (rng.random((n_samples, n_units)) < background).astype(np.float64)
    for j, units in enumerate(members):
        fire = rng.random((n_samples, len(units))) < p_member
        spikes[:, units] += events[:, [j]] * fire
    decay = np.exp(-1.0 / tau)
    calcium = np.empty_like(spikes)
    level = np.zeros(n_units)
    for t in range(n_samples):  # c[t] = decay * c[t-1] + s[t]
        level = decay * level + spikes[t]
        calcium[t] = level
    dff = (calcium + noise * rng.standard_normal(calcium.shape)).astype(np.float32)
    recording = Activations(
        torch.from_numpy(dff), ("sample", "unit"),
        {"sample": {"time": np.arange(n_samples) * dt},
         "unit": {"name": [f"cell{i}" for i in range(n_units)], "x": xy[:, 0], "y": xy[:, 1]}},
        {"source": "planted_assemblies", "kind": "recording", "dt": dt, "units": "dF/F"})
    return PlantedAssemblies(recording, members, events)
