"""Place cells: occupancy-normalised rate maps, spatial information and a circular-shift shuffle test.

* Rate map: spikes per position bin divided by time spent in the bin (occupancy), both smoothed with a
  Gaussian of ``smooth`` bins, using only samples where the animal runs (``speed >= min_speed``), as
  is standard (O'Keefe & Dostrovsky 1971; Wilson & McNaughton 1993).
* Spatial information (Skaggs, McNaughton, Gothard & Markus 1993), in bits per spike:
  ``SI = sum_i p_i (l_i / l) log2(l_i / l)``, with ``p_i`` the occupancy probability of bin i, ``l_i``
  its rate and ``l = sum_i p_i l_i`` the mean rate.
* Shuffle test: the position is shifted circularly against the spike train by a random offset of at
  least ``min_shift_s`` seconds (within each lap or session when ``groups`` is given), with
  :func:`interp.stats.circular_shifts`, ``n_permutations`` times;
  ``p = (1 + #{SI_shuffle >= SI}) / (1 + n_permutations)``. The shuffled rate maps of all shifts are
  computed at once (one sparse product).
* A unit is labeled a place cell when p < ``alpha``, it fires at least ``min_spikes`` spikes while
  running, its peak rate is at least ``min_peak_rate`` Hz and its spatial information at least
  ``min_info`` bits/spike (which excludes fast-spiking interneurons whose weak modulation is
  significant only because they fire so many spikes). Its place field is the contiguous run of
  bins around the peak where the rate stays above ``field_fraction`` of the peak.

>>> rec = interp.data.load("hippocampus", environment="linear-track")        # doctest: +SKIP
>>> pf = place_fields(rec, position="linear_position")                       # doctest: +SKIP
>>> pf.to_frame().query("place_cell")                                        # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from ..errors import ConfigError, DimensionError, InputTypeError, MismatchError
from ..results import Result, themed
from ..stats import circular_shifts, p_value, resolve_groups
from ..tensor import Activations

__all__ = ["PlaceFields", "place_fields", "spatial_information"]


def spatial_information(rate_maps: np.ndarray, occupancy: np.ndarray) -> np.ndarray:
    """Skaggs et al. 1993 spatial information (bits/spike) of ``rate_maps`` ``(..., bins)`` given ``occupancy`` ``(bins,)``.

    Parameters
    ----------
    rate_maps : numpy.ndarray
        Firing rates ``(..., bins)``.
    occupancy : numpy.ndarray
        Time spent in each bin ``(bins,)`` (any unit: it is normalised to probabilities).
    """
    p = occupancy / occupancy.sum()
    mean_rate = (rate_maps * p).sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = rate_maps / mean_rate
        terms = np.where(ratio > 0, p * ratio * np.log2(ratio), 0.0)
    si = terms.sum(-1)
    return np.where(mean_rate[..., 0] > 0, si, 0.0)


@dataclass
class PlaceFields(Result):
    """Rate maps, spatial information, shuffle p-values and place fields of every unit.

    Parameters
    ----------
    rate_maps : numpy.ndarray
        Smoothed rate maps ``(unit, bins)`` in Hz.
    occupancy : numpy.ndarray
        Smoothed time spent per bin ``(bins,)`` in seconds.
    bin_centres : numpy.ndarray
        Centre of each position bin.
    spatial_info : numpy.ndarray
        Skaggs spatial information per unit (bits/spike).
    p_value : numpy.ndarray
        Shuffle p-value of the spatial information per unit.
    n_spikes : numpy.ndarray
        Spikes per unit in the samples used.
    peak_rate : numpy.ndarray
        Maximum of each rate map (Hz).
    field_start, field_end : numpy.ndarray
        Bounds of the field around the peak (position units; NaN for silent units).
    place_cell : numpy.ndarray
        Boolean: passes the test and the spike, peak-rate and information minimums.
    stability : numpy.ndarray
        Correlation of the rate maps of the first and second half of the samples used.
    names : list of str
        Unit names.
    alpha : float
        Significance level used.
    n_permutations : int
        Number of circular shifts in the null.
    """

    rate_maps: np.ndarray  # (unit, bins) Hz
    occupancy: np.ndarray  # (bins,) s
    bin_centres: np.ndarray
    spatial_info: np.ndarray
    p_value: np.ndarray
    n_spikes: np.ndarray
    peak_rate: np.ndarray
    field_start: np.ndarray
    field_end: np.ndarray
    place_cell: np.ndarray
    stability: np.ndarray  # split-half rate-map correlation
    names: list[str]
    alpha: float
    n_permutations: int

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: name, spikes, peak rate, SI, p, place-cell flag, field bounds and centre."""
        peak_pos = self.bin_centres[self.rate_maps.argmax(1)]
        return pd.DataFrame({
            "unit": np.arange(len(self.names)), "name": self.names, "n_spikes": self.n_spikes,
            "peak_rate": self.peak_rate, "spatial_info": self.spatial_info, "p_value": self.p_value,
            "place_cell": self.place_cell, "field_start": self.field_start, "field_end": self.field_end,
            "field_centre": peak_pos, "stability": self.stability,
        })

    def labels(self) -> dict[int, str]:
        """``{unit: "place cell: field 120-180 (SI 1.2 bits/spike, p=0.002)"}`` for place cells."""
        out = {}
        for u in np.flatnonzero(self.place_cell):
            out[int(u)] = (f"place cell: field {self.field_start[u]:.0f}-{self.field_end[u]:.0f} "
                           f"(SI {self.spatial_info[u]:.2f} bits/spike, p={self.p_value[u]:.3g})")
        return out

    def summary(self) -> str:
        """How many units are place cells, and the test used."""
        return (f"{int(self.place_cell.sum())} of {len(self.names)} units are place cells (shuffle p < {self.alpha}, "
                f"{self.n_permutations} circular shifts of the position against the spikes)")

    def plot(self, units: list[int] | None = None, **kwargs: Any):
        """Rate maps as a heatmap (units sorted by field position).

        Parameters
        ----------
        units : list of int, optional
            Units to show; None: the place cells (all units when there are none).
        **kwargs
            ``title`` overrides the figure title.
        """
        import plotly.graph_objects as go

        units = list(np.flatnonzero(self.place_cell)) if units is None else list(units)
        if not units:
            units = list(range(len(self.names)))
        order = sorted(units, key=lambda u: self.rate_maps[u].argmax())
        z = self.rate_maps[order] / np.maximum(self.rate_maps[order].max(1, keepdims=True), 1e-12)
        fig = go.Figure(go.Heatmap(z=z, x=self.bin_centres, y=[self.names[u] for u in order], colorscale="Viridis",
                                   colorbar={"title": "rate / peak"}))
        return themed(fig, title=kwargs.get("title", "place fields (normalised rate maps)"), xaxis_title="position",
                      height=max(300, 18 * len(order) + 120))


def _rate_maps(spikes: np.ndarray, bins: np.ndarray, n_bins: int, dt: float, smooth: float) -> tuple[np.ndarray, np.ndarray]:
    occ = np.bincount(bins, minlength=n_bins).astype(float) * dt
    counts = np.zeros((spikes.shape[1], n_bins))
    np.add.at(counts.T, bins, spikes)
    if smooth > 0:
        occ_s = gaussian_filter1d(occ, smooth, mode="nearest")
        counts = gaussian_filter1d(counts, smooth, axis=1, mode="nearest")
    else:
        occ_s = occ
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(occ_s > 0, counts / occ_s, 0.0)
    return rates, occ_s


def _shuffled_information(S: np.ndarray, bins: np.ndarray, idx: np.ndarray, n_bins: int, dt: float, smooth: float,
                          occ: np.ndarray, batch: int = 64) -> np.ndarray:
    """``(n_permutations, unit)`` spatial information with the position bins reordered by each row of ``idx``."""
    from scipy import sparse

    n, U = S.shape
    out = np.empty((len(idx), U))
    for start in range(0, len(idx), batch):
        rows = idx[start:start + batch]
        P = len(rows)
        M = sparse.csr_matrix((np.ones(P * n), ((np.arange(P)[:, None] * n_bins + bins[rows]).ravel(),
                                                np.tile(np.arange(n), P))), shape=(P * n_bins, n))
        counts = np.asarray(M @ S).reshape(P, n_bins, U).transpose(0, 2, 1)  # (P, U, bins)
        if smooth > 0:
            counts = gaussian_filter1d(counts, smooth, axis=2, mode="nearest")
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = np.where(occ > 0, counts / occ, 0.0)
        out[start:start + P] = spatial_information(rates, occ)
    return out


def place_fields(recording: Activations, position: str = "linear_position", speed: str | None = "speed",
                 min_speed: float = 20.0, n_bins: int = 40, smooth: float = 1.5, n_permutations: int = 500,
                 min_shift_s: float = 20.0, groups: Any = None, alpha: float = 0.05, min_spikes: int = 50,
                 min_peak_rate: float = 1.0, min_info: float = 0.25, field_fraction: float = 0.2,
                 seed: int = 0) -> PlaceFields:
    """Rate maps, spatial information and shuffle test for every unit of a ``(sample=time, unit)`` recording.

    ``recording`` holds spike counts per time bin (``attrs["dt"]`` seconds) and the sample coordinates
    ``position`` (and ``speed`` unless None). Bins without a position (NaN) are ignored. The shuffle
    runs on the running samples in their order (a circular shift of the concatenated run epochs), by at
    least ``min_shift_s`` seconds (at most a third of the shortest segment); ``groups`` (a sample
    coordinate such as a lap or session, or one label per sample) keeps every shift within a segment.

    Parameters
    ----------
    recording : Activations
        Spike counts ``(sample=time, unit)`` with ``attrs["dt"]`` and the position (and speed) coordinates.
    position : str, optional
        Sample coordinate of the (linear) position (default ``"linear_position"``).
    speed : str or None, optional
        Sample coordinate of the running speed (default ``"speed"``); None: keep every sample.
    min_speed : float, optional
        Samples slower than this are left out (default 20, in the speed coordinate's units).
    n_bins : int, optional
        Position bins between the smallest and largest position (default 40; at least 3).
    smooth : float, optional
        S.d. of the Gaussian smoothing of counts and occupancy, in bins (default 1.5; 0: none).
    n_permutations : int, optional
        Circular shifts in the null (default 500).
    min_shift_s : float, optional
        Smallest shift in seconds (default 20), capped at a third of the shortest segment.
    groups : str or array-like, optional
        A sample coordinate (lap, session) or one label per sample; shifts stay within a segment.
    alpha : float, optional
        Significance level of the shuffle test (default 0.05).
    min_spikes : int, optional
        Fewest spikes of a place cell (default 50).
    min_peak_rate : float, optional
        Lowest peak rate of a place cell, in Hz (default 1).
    min_info : float, optional
        Lowest spatial information of a place cell, in bits/spike (default 0.25).
    field_fraction : float, optional
        The field is the contiguous run of bins around the peak at or above this fraction of the peak rate
        (default 0.2).
    seed : int, optional
        Seed of the shifts (default 0).
    """
    if not isinstance(recording, Activations) or recording.data.ndim != 2:
        raise InputTypeError("place_fields needs a (sample, unit) Activations of spike counts with position coordinates")
    dt = recording.attrs.get("dt")
    if not dt:
        raise ConfigError("the recording needs attrs['dt'] (seconds per sample) to turn counts into rates")
    if n_bins < 3:
        raise ConfigError(f"n_bins must be at least 3, got {n_bins}")
    spikes = recording.data.detach().cpu().double().numpy()
    pos = np.asarray(recording.coord(position, recording.dims[0]), dtype=float)
    if len(pos) != len(spikes):
        raise MismatchError(f"position has {len(pos)} values but there are {len(spikes)} samples")
    codes = resolve_groups(groups, len(spikes), recording)
    keep = np.isfinite(pos)
    if speed is not None:
        keep &= np.asarray(recording.coord(speed, recording.dims[0]), dtype=float) >= min_speed
    if keep.sum() < 10:
        raise DimensionError(f"only {int(keep.sum())} samples have a position (and speed >= {min_speed}); need more")
    S, x = spikes[keep], pos[keep]
    edges = np.linspace(x.min(), x.max() + 1e-9, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
    rates, occ = _rate_maps(S, bins, n_bins, dt, smooth)
    si = spatial_information(rates, occ)
    n = len(S)
    seg = codes[keep] if codes is not None else None
    shortest = n if seg is None else int(np.bincount(seg)[np.unique(seg)].min())
    lo = max(1, min(int(round(min_shift_s / dt)), shortest // 3))
    idx = circular_shifts(n, n_permutations, seed, groups=None if seg is None else seg, min_shift=lo)
    null = _shuffled_information(S, bins, idx, n_bins, dt, smooth, occ)
    p = p_value(si, null)
    half = n // 2
    r1, _ = _rate_maps(S[:half], bins[:half], n_bins, dt, smooth)
    r2, _ = _rate_maps(S[half:], bins[half:], n_bins, dt, smooth)
    stability = np.array([np.corrcoef(a, b)[0, 1] if a.std() > 0 and b.std() > 0 else np.nan for a, b in zip(r1, r2)])
    n_spikes = S.sum(0)
    peak = rates.max(1)
    centres = (edges[:-1] + edges[1:]) / 2
    start, end = np.full(len(peak), np.nan), np.full(len(peak), np.nan)
    for u in range(len(peak)):
        if peak[u] <= 0:
            continue
        above = rates[u] >= field_fraction * peak[u]
        i = j = int(rates[u].argmax())
        while i > 0 and above[i - 1]:
            i -= 1
        while j < n_bins - 1 and above[j + 1]:
            j += 1
        start[u], end[u] = edges[i], edges[j + 1]
    place = (p < alpha) & (n_spikes >= min_spikes) & (peak >= min_peak_rate) & (si >= min_info)
    names = ([str(v) for v in recording.coord("name", recording.dims[1])] if "name" in recording.coords[recording.dims[1]]
             else [str(i) for i in range(S.shape[1])])
    return PlaceFields(rates, occ, centres, si, p, n_spikes, peak, start, end, place, stability, names, alpha,
                       n_permutations)
