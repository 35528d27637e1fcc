"""Tests of the self-contained HTML report builder (interp.report.html)."""

from __future__ import annotations

import re

import pandas as pd
import plotly.graph_objects as go
import pytest

from interp.errors import InputTypeError
from interp.report.html import Report, table_html


def test_report_embeds_plotly_once_and_no_external_resources(tmp_path):
    rep = Report("My <report>", subtitle="provenance")
    rep.add_section("Intro", "<p>hello</p>")
    rep.add_section("Figures", [go.Figure(go.Bar(y=[1, 3, 2])), go.Figure(go.Scatter(y=[2, 1]))])
    rep.add_table("Scores", pd.DataFrame({"unit": ["a", "b"], "score": [0.9, 0.1]}))
    path = rep.write(tmp_path / "sub" / "r.html")
    text = path.read_text()
    from plotly.offline import get_plotlyjs

    assert text.count(get_plotlyjs()[:2000]) == 1  # the plotly.js bundle is embedded exactly once
    text = text.replace(get_plotlyjs(), "")  # the bundle's own strings mention URLs; it loads none offline
    assert "My &lt;report&gt;" in text
    assert not re.search(r"""(src|href)=["']https?://""", text)
    assert "<link" not in text
    assert text.count('class="plotly-lazy"') == 2
    # no temp files left behind by the atomic write
    assert [p.name for p in path.parent.iterdir()] == ["r.html"]


def test_report_without_figures_has_no_plotly():
    rep = Report("Tables only")
    rep.add_table("t", pd.DataFrame({"x": [1, 2]}))
    assert len(rep.to_html()) < 50_000


def test_table_escapes_cells_but_not_html_columns():
    frame = pd.DataFrame({"name": ["<b>x</b>"], "link": ['<a href="#u1">u1</a>'], "v": [0.5]})
    out = table_html(frame, html_columns=["link"])
    assert "&lt;b&gt;x&lt;/b&gt;" in out
    assert '<a href="#u1">u1</a>' in out
    assert 'data-type="num"' in out  # numeric column sorts numerically


def test_section_ids_are_unique():
    rep = Report("r")
    assert rep.add_section("Same", "a") == "same"
    assert rep.add_section("Same", "b") == "same-2"


def test_bad_content_type_is_a_clear_error():
    rep = Report("r")
    with pytest.raises(InputTypeError, match="HTML string, a plotly Figure"):
        rep.add_section("bad", 42)
    with pytest.raises(InputTypeError, match="DataFrame"):
        rep.add_table("bad", [[1, 2]])
