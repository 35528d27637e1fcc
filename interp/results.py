"""The one result contract: every public result type of the library is a :class:`Result`.

A result is what an analysis returns: a small object that holds numbers and knows how to show them.
Every result implements the same four verbs, so a user who has learned one knows them all:

* ``to_frame()`` -- a tidy :class:`pandas.DataFrame` (one row per unit, cell, pair ...);
* ``plot()`` -- a plotly figure in the library's one theme (:data:`THEME`);
* ``summary()`` -- a few lines of plain text that say what was found;
* ``_repr_html_()`` -- the summary with the head of the table folded under it; in Jupyter a result
  shows its plot above that (``_ipython_display_``).

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
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InterpError

__all__ = ["Result", "THEME", "themed", "numeric_columns", "check_result", "ResultContractError"]

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
    """Apply the library's plotly theme (and any extra layout settings) to ``fig``; returns ``fig``.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        The figure (changed in place and returned).
    **layout
        Extra layout settings (``title=``, ``height=`` ...).
    """
    _register_theme()
    fig.update_layout(template=THEME, **layout)
    return fig


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Names of the numeric, non-boolean columns of ``frame``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Any table.
    """
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

    def _table_html(self) -> str:
        """The head of :meth:`to_frame` as HTML, folded under a one-line heading."""
        try:
            frame = self.to_frame()
            table = frame.head(self.display_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}")
            more = f", first {self.display_rows} shown" if len(frame) > self.display_rows else ""
            return f"<details><summary>table: {len(frame)} rows{more} (.to_frame())</summary>{table}</details>"
        except Exception as exc:  # noqa: BLE001 - a display hook must never raise in Jupyter
            return f"<i>(no table: {html.escape(str(exc))})</i>"

    def _repr_html_(self) -> str:
        return f'<div class="interp-result">{self._summary_html()}{self._table_html()}</div>'

    def _ipython_display_(self) -> None:
        """How Jupyter shows a result: its plot above the summary, the table folded under it."""
        from IPython.display import HTML, display

        try:
            fig = self.plot()
        except Exception:  # noqa: BLE001 - a display hook must never raise; the summary still shows
            fig = None
        if fig is not None:
            display(fig)
        display(HTML(self._repr_html_()))

    def report_section(self) -> list[Any]:
        """What :meth:`interp.report.Report.add` places in a section: summary, figure and table."""
        parts: list[Any] = [self._summary_html()]
        try:
            parts.append(self.plot())
        except NotImplementedError:
            pass
        parts.append(self.to_frame())
        return parts


class ResultContractError(InterpError, AssertionError):
    """A result object breaks the result contract (raised by :func:`check_result`)."""


def _theme_fingerprint(template: Any) -> tuple:
    layout = template.layout
    return tuple(layout.colorway or ()), layout.font.family


def check_result(result: Any, tmp_path: str | Path | None = None) -> None:
    """Check that ``result`` keeps the result contract, as scikit-learn's ``check_estimator`` does for estimators.

    Parameters
    ----------
    result
        An instance of a :class:`Result` subclass, built from small data.
    tmp_path
        A folder for the ``save``/``load`` round trip; without it, classes that define ``save`` are
        checked in a temporary folder.

    Raises
    ------
    ResultContractError
        Naming the first verb that breaks the contract: ``to_frame()`` must be a non-empty
        :class:`pandas.DataFrame`, ``plot()`` a plotly ``Figure`` in the library theme (:func:`themed`),
        ``summary()`` a few (<= 40) non-empty lines, ``_repr_html_()`` HTML holding the summary's first
        line, ``report_section()`` a non-empty list, and ``save``/``load`` (where defined) a round trip
        with an equal table.

    Examples
    --------
    >>> class Scores(Result):
    ...     def __init__(self, values): self.values = values
    ...     def to_frame(self): return pd.DataFrame({"unit": range(len(self.values)), "score": self.values})
    >>> check_result(Scores([0.1, 0.9]))
    """
    import tempfile

    import plotly.graph_objects as go
    import plotly.io as pio

    name = type(result).__name__

    def fail(what: str) -> None:
        raise ResultContractError(f"{name} breaks the result contract: {what} (see interp.results)")

    if not isinstance(result, Result):
        fail(f"it is a {type(result).__module__}.{name}, not a subclass of interp.results.Result")
    frame = result.to_frame()
    if not isinstance(frame, pd.DataFrame) or frame.empty or len(frame.columns) == 0:
        fail(f"to_frame() must return a non-empty pandas.DataFrame, got {type(frame).__name__}")
    fig = result.plot()
    if not isinstance(fig, go.Figure):
        fail(f"plot() must return a plotly Figure, got {type(fig).__name__}")
    _register_theme()
    if _theme_fingerprint(fig.layout.template) != _theme_fingerprint(pio.templates[THEME]):
        fail("plot() is not in the library theme: return interp.results.themed(fig)")
    text = result.summary()
    if not isinstance(text, str) or not text.strip():
        fail(f"summary() must return non-empty text, got {text!r}")
    if len(text.splitlines()) > 40:
        fail(f"summary() is {len(text.splitlines())} lines; a few lines, please")
    page = result._repr_html_()
    if not isinstance(page, str) or not page.lstrip().startswith("<") or html.escape(text.splitlines()[0]) not in page:
        fail("_repr_html_() must be HTML holding the summary's first line")
    section = result.report_section()
    if not isinstance(section, list) or not section:
        fail("report_section() must return a non-empty list of parts")
    if callable(getattr(type(result), "save", None)):
        with tempfile.TemporaryDirectory() as tmp:
            path = result.save(Path(tmp_path or tmp) / f"{name}.out")
            again = type(result).load(path)
            if type(again) is not type(result):
                fail(f"load(save(x)) returned a {type(again).__name__}")
            try:
                pd.testing.assert_frame_equal(again.to_frame().reset_index(drop=True), frame.reset_index(drop=True),
                                              check_dtype=False)
            except AssertionError as exc:
                fail(f"load(save(x)).to_frame() differs from x.to_frame(): {exc}")
