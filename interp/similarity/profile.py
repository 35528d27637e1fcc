"""Results of :func:`interp.similarity.compare`: one model's layer-by-layer :class:`SimilarityProfile`
and :class:`SimilarityProfiles`, several profiles on the same stimuli shown together (e.g. trained vs
random weights) with the paired bootstrap difference of their best sites.

>>> prof = interp.compare(model, stimuli, recording, sites="blocks.*")           # doctest: +SKIP
>>> rand = interp.compare(random_weights(model), stimuli, recording, sites="blocks.*")  # doctest: +SKIP
>>> both = SimilarityProfiles([prof, rand], ["trained", "random weights"])       # doctest: +SKIP
>>> print(both.summary()); both.plot()                                           # doctest: +SKIP
>>> interp.report.html.Report("Brain similarity").add(both)                      # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DimensionError
from ..results import Result, themed
from ..stats import BootstrapResult, percentile_interval
from .ceiling import NoiseCeiling

__all__ = ["SimilarityProfile", "SimilarityProfiles"]


@dataclass
class SimilarityProfile(Result):
    """Similarity of every model site with a recording (what :func:`~interp.similarity.compare` returns).

    ``frame``: one row per site (``site``, ``depth``, ``score``, ``low``, ``high``, ``p_value``);
    ``ceiling``: the noise ceiling (RSA with >= 2 data RDMs) or None; ``samples``: paired bootstrap
    scores ``(n_bootstraps, n_sites)``; ``attrs``: method, comparator, level, seed, stimuli, ...

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per site: ``site``, ``depth``, ``score``, ``low``, ``high``, ``p_value``.
    ceiling : NoiseCeiling, optional
        The noise ceiling (RSA with >= 2 data RDMs) or None.
    samples : numpy.ndarray
        Paired bootstrap scores ``(n_bootstraps, n_sites)``.
    attrs : dict
        Method, comparator, level, seed, stimuli ...

    >>> prof.best()["site"], prof.summary()                                      # doctest: +SKIP
    """

    frame: pd.DataFrame
    ceiling: NoiseCeiling | None
    samples: np.ndarray = field(repr=False)
    attrs: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row per site, with the noise-ceiling bounds as columns when there is a ceiling."""
        out = self.frame.copy()
        if self.ceiling is not None:
            out["ceiling_lower"], out["ceiling_upper"] = self.ceiling.lower, self.ceiling.upper
        return out

    def best(self) -> pd.Series:
        """The row of the best-scoring site."""
        return self.frame.loc[self.frame["score"].idxmax()]

    def difference(self, other: SimilarityProfile, site: str | None = None, other_site: str | None = None,
                   level: float | None = None) -> BootstrapResult:
        """Paired bootstrap CI of ``self[site] - other[other_site]`` (default: each profile's best site).

        Valid when both profiles were computed with the same seed, stimuli and bootstrap scheme (checked).

        Parameters
        ----------
        other : SimilarityProfile
            The profile to compare with (same seed, stimuli and bootstrap scheme).
        site, other_site : str, optional
            The sites compared (default: each profile's best).
        level : float, optional
            Confidence level (default: the profile's).
        """
        keys = ("seed", "n_bootstraps", "over", "stimuli")
        if any(self.attrs.get(k) != other.attrs.get(k) for k in keys):
            raise ConfigError("profiles are not paired: compute both with the same seed, n_bootstraps, bootstrap "
                              "scheme and stimuli")
        i = self._site_index(site if site is not None else self.best()["site"])
        j = other._site_index(other_site if other_site is not None else other.best()["site"])
        diff = self.samples[:, i] - other.samples[:, j]
        level = level or self.attrs.get("level", 0.95)
        low, high = percentile_interval(diff, 1 - level)
        est = float(self.frame["score"].iloc[i] - other.frame["score"].iloc[j])
        return BootstrapResult(est, float(low), float(high), level, diff, self.attrs.get("over", "stimuli"))

    def _site_index(self, site: str) -> int:
        sites = self.frame["site"].tolist()
        if site not in sites:
            raise ConfigError(f"no site {site!r} in this profile; sites are {sites}")
        return sites.index(site)

    def summary(self) -> str:
        """Measure, stimuli, bootstrap scheme, noise ceiling and the best site with its CI."""
        return SimilarityProfiles([self]).summary()

    def plot(self, name: str | None = None, **kwargs: Any) -> Any:
        """Score per site with its CI and the noise-ceiling band (plotly).

        Parameters
        ----------
        name : str, optional
            The profile's name in the legend.
        **kwargs
            ``title=``.
        """
        return SimilarityProfiles([self], [name or self.attrs.get("model", "model")]).plot(**kwargs)


@dataclass
class SimilarityProfiles(Result):
    """Several :class:`SimilarityProfile` of the same stimuli and recording, shown on one figure.

    ``names`` label the profiles (default: each profile's ``attrs["model"]``). With two profiles
    computed with the same seed the summary gives the paired bootstrap difference of their best sites
    (:meth:`SimilarityProfile.difference`).

    Parameters
    ----------
    profiles : list of SimilarityProfile
        Profiles of the same stimuli and recording.
    names : list of str, optional
        Their labels (default: each profile's ``attrs["model"]``).
    """

    profiles: list[SimilarityProfile]
    names: list[str] | None = None

    def __post_init__(self) -> None:
        self.profiles = [self.profiles] if isinstance(self.profiles, SimilarityProfile) else list(self.profiles)
        if not self.profiles:
            raise DimensionError("SimilarityProfiles needs at least one profile")
        if self.names is None:
            self.names = [str(p.attrs.get("model", f"model {i}")) for i, p in enumerate(self.profiles)]
        self.names = [str(n) for n in self.names]
        if len(self.names) != len(self.profiles):
            raise DimensionError(f"{len(self.names)} names for {len(self.profiles)} profiles")

    def to_frame(self) -> pd.DataFrame:
        """Every profile's rows with a ``model`` column."""
        frames = []
        for prof, name in zip(self.profiles, self.names):
            f = prof.to_frame()
            f.insert(0, "model", name)
            frames.append(f)
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> str:
        """Measure, stimuli, bootstrap scheme, noise ceiling, each profile's best site and the paired difference."""
        p0 = self.profiles[0]
        a = p0.attrs
        head = f"Similarity by site: {a.get('measure', a.get('method', 'similarity'))}"
        if a.get("rdm_method"):
            head += f" (model RDMs: {a['rdm_method']})"
        head += f" vs {a.get('recording', 'recording')}, {a.get('n_stimuli', '?')} stimuli"
        lines = [head]
        if a.get("n_bootstraps"):
            lines.append(f"  {int(round(100 * a.get('level', 0.95)))}% percentile bootstrap CIs "
                         f"({a['n_bootstraps']} resamples over {a.get('over', 'stimuli')})")
        if p0.ceiling is not None:
            c = p0.ceiling
            lines.append(f"  noise ceiling ({c.method}): lower {c.lower:.4f}, upper {c.upper:.4f} over {c.n_rdms} RDMs")
        for prof, name in zip(self.profiles, self.names):
            b = prof.best()
            lines.append(f"  {name}: best site {b['site']} {b['score']:.4f} [{b['low']:.4f}, {b['high']:.4f}]")
        if len(self.profiles) == 2 and len(p0.samples) and len(self.profiles[1].samples):
            try:
                d = p0.difference(self.profiles[1])
            except ConfigError:
                lines.append("  (the two profiles are not paired: no difference of their best sites)")
            else:
                lines.append(f"  best({self.names[0]}) - best({self.names[1]}) = {d.estimate:.4f} "
                             f"[{d.low:.4f}, {d.high:.4f}] (paired bootstrap)")
        return "\n".join(lines)

    def plot(self, title: str | None = None, **kwargs: Any) -> Any:
        """Score per site of every profile with its CI, and the noise-ceiling band (plotly).

        Parameters
        ----------
        title : str, optional
            The figure's title.
        **kwargs
            Passed to the layout.
        """
        import plotly.graph_objects as go

        fig = go.Figure()
        ceiling = next((p.ceiling for p in self.profiles if p.ceiling is not None), None)
        for prof, name in zip(self.profiles, self.names):
            f = prof.frame
            fig.add_trace(go.Scatter(
                x=f["site"], y=f["score"], mode="lines+markers", name=name,
                error_y=dict(type="data", symmetric=False, array=f["high"] - f["score"],
                             arrayminus=f["score"] - f["low"]),
            ))
        if ceiling is not None:
            fig.add_hrect(y0=ceiling.lower, y1=ceiling.upper, fillcolor="gray", opacity=0.25, line_width=0,
                          annotation_text="noise ceiling", annotation_position="top left")
        a = self.profiles[0].attrs
        ylabel = a.get("measure", "similarity")
        ci = (f" ({int(round(100 * a.get('level', 0.95)))}% bootstrap CI over {a.get('over', '')})"
              if a.get("n_bootstraps") else "")
        return themed(fig, title=title or f"{ylabel} vs {a.get('recording', 'recording')} by site{ci}",
                      xaxis_title="site", yaxis_title=ylabel)

    def report_section(self) -> list[Any]:
        """Summary, figure and the table (rounded to 4 digits)."""
        return [self._summary_html(), self.plot(), self.to_frame().round(4)]
