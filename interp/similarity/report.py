"""HTML report sections for similarity profiles (uses :class:`interp.report.html.Report`).

>>> from interp.report.html import Report                    # doctest: +SKIP
>>> rep = Report("Brain similarity")                          # doctest: +SKIP
>>> add_profile_section(rep, [trained, random], ["trained", "random weights"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..report.html import escape, figure_html, table_html
from .compare import SimilarityProfile, plot_profiles

__all__ = ["profile_section", "add_profile_section", "profiles_frame"]


def profiles_frame(profiles: Sequence[SimilarityProfile], names: Sequence[str]) -> pd.DataFrame:
    """One table with every profile's rows and a ``model`` column."""
    frames = []
    for prof, name in zip(profiles, names):
        f = prof.to_frame()
        f.insert(0, "model", name)
        frames.append(f)
    return pd.concat(frames, ignore_index=True).round(4)


def _summary(profiles: Sequence[SimilarityProfile], names: Sequence[str]) -> str:
    p0 = profiles[0]
    parts = [f"<p>Measure: <b>{escape(str(p0.attrs.get('measure')))}</b>"]
    if p0.attrs.get("rdm_method"):
        parts.append(f"; model RDMs: {escape(str(p0.attrs['rdm_method']))}")
    parts.append(f"; {p0.attrs.get('n_stimuli')} stimuli; {int(100 * p0.attrs.get('level', 0.95))}% percentile "
                 f"bootstrap CIs ({p0.attrs.get('n_bootstraps')} resamples over {escape(str(p0.attrs.get('over')))}).</p>")
    if p0.ceiling is not None:
        parts.append(f"<p>Noise ceiling ({escape(p0.ceiling.convention)}): lower {p0.ceiling.lower:.4f}, upper "
                     f"{p0.ceiling.upper:.4f} over {p0.ceiling.n_rdms} data RDMs.</p>")
    items = []
    for prof, name in zip(profiles, names):
        b = prof.best()
        items.append(f"<li>{escape(name)}: best site <code>{escape(str(b['site']))}</code> "
                     f"{b['score']:.4f} [{b['low']:.4f}, {b['high']:.4f}]</li>")
    if len(profiles) == 2:
        d = profiles[0].difference(profiles[1])
        items.append(f"<li>best({escape(names[0])}) - best({escape(names[1])}) = {d.estimate:.4f} "
                     f"[{d.low:.4f}, {d.high:.4f}] (paired bootstrap)</li>")
    return "".join(parts) + f"<ul>{''.join(items)}</ul>"


def profile_section(profiles: SimilarityProfile | Sequence[SimilarityProfile], names: Sequence[str] | None = None,
                    title: str | None = None) -> tuple[Any, str]:
    """A plotly figure and a self-contained HTML fragment (summary, lazy figure, table) for the profiles."""
    profiles = [profiles] if isinstance(profiles, SimilarityProfile) else list(profiles)
    names = list(names) if names is not None else [p.attrs.get("model", f"model {i}") for i, p in enumerate(profiles)]
    fig = plot_profiles(profiles, names, title)
    html_text = _summary(profiles, names) + figure_html(fig) + table_html(profiles_frame(profiles, names))
    return fig, html_text


def add_profile_section(report: Any, profiles: SimilarityProfile | Sequence[SimilarityProfile],
                        names: Sequence[str] | None = None, title: str = "Brain similarity by layer") -> str:
    """Add a section (summary, figure, table) to an :class:`interp.report.html.Report`; returns its id."""
    profiles = [profiles] if isinstance(profiles, SimilarityProfile) else list(profiles)
    names = list(names) if names is not None else [p.attrs.get("model", f"model {i}") for i, p in enumerate(profiles)]
    fig = plot_profiles(profiles, names)
    return report.add_section(title, [_summary(profiles, names), fig, profiles_frame(profiles, names)])
