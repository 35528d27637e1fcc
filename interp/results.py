"""The one result contract: every public result type of the library is a :class:`Result`.

A result is what an analysis returns: a small object that holds numbers and knows how to show them.
Every result implements the same four verbs, so a user who has learned one knows them all:

* ``to_frame()`` -- a tidy :class:`pandas.DataFrame` (one row per unit, cell, pair ...);
* ``plot()`` -- a plotly figure in the library's one theme (:data:`THEME`);
* ``summary()`` -- a few lines of plain text that say what was found;
* ``_repr_html_()`` -- how Jupyter shows it (the summary and the head of the table).

Results that are worth keeping also implement ``save(path)`` / ``load(path)``. A report places any
result as a section: ``interp.report.Report("title").add(result)``.

Subclasses implement :meth:`Result.to_frame` and usually :meth:`Result.plot` and
:meth:`Result.summary`; the defaults below are usable but generic. A result whose report section needs
more than summary, figure and table overrides :meth:`Result.report_section` (``Report.add(result,
**options)`` passes ``options`` on) and may give ``report_head()``: styles added once to the report's
``<head>`` (the label report's unit cards do both). ``tests/test_result_contract.py`` checks every public
result class; a new one needs a factory there.

>>> import pandas as pd
>>> class Scores(Result):
...     def __init__(self, values): self.values = values
...     def to_frame(self): return pd.DataFrame({"unit": range(len(self.values)), "score": self.values})
>>> Scores([0.1, 0.9]).summary().splitlines()[0]
'Scores: 2 rows (unit, score)'
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

__all__ = ["Result", "THEME", "themed", "numeric_columns"]

#: Name of the plotly template every ``plot()`` of the library uses.
THEME = "interp"
_REGISTERED = [False]


def _register_theme() -> None:
    if _REGISTERED[0]:
        return
    import plotly.graph_objects as go
    import plotly.io as pio

    base = pio.templates["plotly_white"]
    template = go.layout.Template(base)
    template.layout.font = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=13)
    template.layout.title = dict(font=dict(size=15))
    template.layout.margin = dict(l=60, r=20, t=50, b=50)
    template.layout.colorway = ["#2f6fdf", "#e4572e", "#17a398", "#f3a712", "#6c4bb4", "#7a7a7a", "#c03f87",
                                "#4caf50"]
    pio.templates[THEME] = template
    _REGISTERED[0] = True


def themed(fig: Any, **layout: Any) -> Any:
    """Apply the library's plotly theme (and any extra layout settings) to ``fig``; returns ``fig``."""
    _register_theme()
    fig.update_layout(template=THEME, **layout)
    return fig


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Names of the numeric, non-boolean columns of ``frame``."""
    return [c for c in frame.columns
            if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]


class Result:
    """Base class of every public result type (see the module docstring for the contract)."""

    #: Rows of the table shown in Jupyter and in report sections.
    display_rows = 20

    def to_frame(self) -> pd.DataFrame:
        """A tidy table of the result (one row per unit, cell or pair)."""
        raise NotImplementedError(f"{type(self).__name__} must implement to_frame()")

    def plot(self, **kwargs: Any) -> Any:
        """A plotly figure of the result in the library's theme.

        The default draws the first numeric column of :meth:`to_frame` as bars; subclasses draw
        what a researcher would look at.
        """
        import plotly.graph_objects as go

        frame = self.to_frame()
        cols = numeric_columns(frame)
        if not cols:
            fig = go.Figure(go.Table(header=dict(values=list(frame.columns)),
                                     cells=dict(values=[frame[c].astype(str).tolist() for c in frame.columns])))
        else:
            label = [str(i) for i in frame.index] if frame.index.name or len(cols) == len(frame.columns) else \
                frame[[c for c in frame.columns if c not in cols][0]].astype(str).tolist()
            fig = go.Figure(go.Bar(x=label, y=frame[cols[0]].tolist(), name=cols[0]))
            fig.update_layout(yaxis_title=cols[0])
        return themed(fig, title=kwargs.get("title", type(self).__name__))

    def summary(self) -> str:
        """A few lines of plain text saying what the result holds."""
        frame = self.to_frame()
        cols = ", ".join(map(str, frame.columns[:8])) + (", ..." if len(frame.columns) > 8 else "")
        lines = [f"{type(self).__name__}: {len(frame)} rows ({cols})"]
        for c in numeric_columns(frame)[:4]:
            values = frame[c].dropna()
            if len(values):
                lines.append(f"  {c}: mean {values.mean():.4g}, min {values.min():.4g}, max {values.max():.4g}")
        return "\n".join(lines)

    def _summary_html(self) -> str:
        """The summary as one HTML paragraph, its first line in bold."""
        lines = self.summary().splitlines() or [type(self).__name__]
        return "<p><b>" + html.escape(lines[0]) + "</b>" + "".join(f"<br>{html.escape(x)}" for x in lines[1:]) + "</p>"

    def _repr_html_(self) -> str:
        head = self._summary_html()
        try:
            table = self.to_frame().head(self.display_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}")
        except Exception as exc:  # noqa: BLE001 - a display hook must never raise in Jupyter
            table = f"<i>(no table: {html.escape(str(exc))})</i>"
        return f'<div class="interp-result">{head}{table}</div>'

    def report_section(self) -> list[Any]:
        """What :meth:`interp.report.Report.add` places in a section: summary, figure and table."""
        parts: list[Any] = [self._summary_html()]
        try:
            parts.append(self.plot())
        except NotImplementedError:
            pass
        parts.append(self.to_frame())
        return parts
