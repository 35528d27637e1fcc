"""Self-contained HTML reports: one file, plotly.js embedded once, no external resources.

A :class:`Report` is a list of sections. A section holds HTML strings, plotly figures, tables
(sortable and filterable in the browser) or a list of those. :meth:`Report.write` writes one HTML
file atomically that works offline with no server.

Plotly figures are rendered lazily: a figure draws when it scrolls into view or when the
``<details>`` element around it opens, so a report with hundreds of figures still loads fast.
Links to ``#some-id`` open (and scroll to) a ``<details id="some-id">`` card.

Example
-------
>>> import pandas as pd, plotly.graph_objects as go
>>> from interp.report.html import Report
>>> rep = Report("Demo")
>>> _ = rep.add_section("Intro", "<p>Hello</p>")
>>> _ = rep.add_section("A figure", go.Figure(go.Bar(y=[1, 3, 2])))
>>> _ = rep.add_table("Numbers", pd.DataFrame({"unit": ["a", "b"], "score": [0.9, 0.1]}))
>>> rep.write("/tmp/demo_report.html")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputTypeError
from ..tensor import atomic_write

__all__ = ["Report", "table_html", "figure_html", "escape"]

escape = html.escape


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def _is_figure(obj: Any) -> bool:
    return type(obj).__name__ in {"Figure", "FigureWidget"} and hasattr(obj, "to_plotly_json")


def _script_json(payload: str) -> str:
    """Make a JSON string safe inside ``<script type="application/json">``."""
    return payload.replace("</", "<\\/").replace("<!--", "<\\!--")


_FIGURE_COUNTER = [0]


def figure_html(fig: Any, height: int | None = None) -> str:
    """A placeholder ``<div>`` plus the figure's JSON; the report's script draws it lazily.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        The figure.
    height : int, optional
        Height of the placeholder in pixels (default: the figure's, else 420).
    """
    import plotly.io as pio

    _FIGURE_COUNTER[0] += 1
    fid = f"fig{_FIGURE_COUNTER[0]}"
    payload = _script_json(pio.to_json(fig, validate=False, remove_uids=True))
    h = height or fig.layout.height or 420
    return (f'<div class="plotly-lazy" data-fig="{fid}" style="min-height:{int(h)}px"></div>'
            f'<script type="application/json" id="{fid}">{payload}</script>')


def _cell(value: Any, escape_html: bool) -> tuple[str, str]:
    """(display html, sort key) of a table cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)), str(int(bool(value)))
    if isinstance(value, (int, np.integer)):
        return str(int(value)), str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        text = f"{v:.3g}" if (v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5)) else f"{v:.3f}".rstrip("0").rstrip(".")
        return text or "0", repr(v)
    text = str(value)
    if escape_html:
        return escape(text), escape(text)
    return text, escape(re.sub(r"<[^>]+>", "", text))


def table_html(frame: pd.DataFrame, sortable: bool = True, filterable: bool = True,
               html_columns: Sequence[str] = (), max_rows: int | None = None, table_id: str | None = None) -> str:
    """An HTML table of ``frame``; click a header to sort, type in the filter row to filter.

    Filters: plain text matches as a case-insensitive substring; ``>0.5``, ``<=3``, ``=L2`` and
    ``!=dead`` compare (numerically when both sides are numbers). Columns in ``html_columns``
    are inserted as raw HTML (e.g. links to cards); everything else is escaped.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    sortable, filterable : bool
        Sort by a click on a header; a filter row under the header.
    html_columns : Sequence[str]
        Columns inserted as raw HTML (links to cards); every other cell is escaped.
    max_rows : int, optional
        Show only the first rows.
    table_id : str, optional
        The table's HTML id.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InputTypeError(f"add_table needs a pandas DataFrame, got {type(frame).__name__}")
    if max_rows is not None:
        frame = frame.head(max_rows)
    cols = [str(c) for c in frame.columns]
    raw = {str(c) for c in html_columns}
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    classes = ["itable"] + (["sortable"] if sortable else []) + (["filterable"] if filterable else [])
    out = [f'<div class="table-wrap"><table class="{" ".join(classes)}"' + (f' id="{table_id}"' if table_id else "") + ">"]
    out.append("<thead><tr>")
    for c, num in zip(cols, numeric):
        out.append(f'<th data-type="{"num" if num else "text"}" title="click to sort">{escape(c)}</th>')
    out.append("</tr>")
    if filterable:
        out.append('<tr class="filters">' + "".join(
            f'<th><input type="search" placeholder="filter" aria-label="filter {escape(c)}" data-col="{i}"></th>'
            for i, c in enumerate(cols)) + "</tr>")
    out.append("</thead><tbody>")
    for row in frame.itertuples(index=False, name=None):
        cells = []
        for c, v in zip(cols, row):
            shown, key = _cell(v, c not in raw)
            cells.append(f'<td data-v="{key}">{shown}</td>' if key != shown else f"<td>{shown}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if filterable:
        out.append(f'<div class="rowcount">{len(frame)} rows</div>')
    out.append("</div>")
    return "".join(out)


class _Table:
    def __init__(self, frame: pd.DataFrame, **kwargs: Any) -> None:
        self.frame, self.kwargs = frame, kwargs


def _render(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if _is_figure(content):
        return figure_html(content)
    if isinstance(content, _Table):
        return table_html(content.frame, **content.kwargs)
    if isinstance(content, pd.DataFrame):
        return table_html(content)
    if isinstance(content, (list, tuple)):
        return "\n".join(_render(c) for c in content)
    raise InputTypeError(
        f"section content must be an HTML string, a plotly Figure, a DataFrame or a list of those; got {type(content).__name__}"
    )


_CSS = """
:root{--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--bg:#fff;--accent:#2f6fdf;--soft:#f6f8fb}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);margin:0;background:var(--bg)}
header{padding:18px 28px;border-bottom:1px solid var(--line);background:var(--soft)}
header h1{margin:0;font-size:22px}
header .sub{color:var(--muted);margin-top:4px}
nav.toc{padding:8px 28px;border-bottom:1px solid var(--line);font-size:13px}
nav.toc a{margin-right:14px;color:var(--accent);text-decoration:none}
main{padding:8px 28px 40px;max-width:1400px}
section{margin:22px 0}
section>h2{font-size:18px;border-bottom:1px solid var(--line);padding-bottom:4px}
.table-wrap{overflow:auto;max-height:70vh;border:1px solid var(--line);border-radius:6px}
table.itable{border-collapse:collapse;width:100%;font-size:13px}
table.itable th,table.itable td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
table.itable thead th{position:sticky;top:0;background:#f0f3f8;z-index:1}
table.itable thead tr.filters th{top:27px}
table.itable.sortable thead tr:first-child th{cursor:pointer;user-select:none;white-space:nowrap}
table.itable th.asc::after{content:" \\25B2";font-size:10px}
table.itable th.desc::after{content:" \\25BC";font-size:10px}
table.itable input{width:100%;min-width:50px;font-size:12px;padding:2px 4px;border:1px solid var(--line);border-radius:3px}
table.itable tbody tr:hover{background:#f5f8ff}
.rowcount{color:var(--muted);font-size:12px;padding:4px 8px}
details.card{border:1px solid var(--line);border-radius:8px;margin:8px 0;background:#fff}
details.card>summary{padding:8px 12px;cursor:pointer;list-style:none;display:flex;gap:12px;align-items:baseline}
details.card>summary::-webkit-details-marker{display:none}
details.card[open]>summary{border-bottom:1px solid var(--line);background:var(--soft)}
details.card .body{padding:10px 14px}
.muted{color:var(--muted)}
.note{background:#fff7e6;border:1px solid #f5d48a;border-radius:6px;padding:6px 10px;margin:6px 0}
.error{background:#fdecec;border:1px solid #f1a7a7;border-radius:6px;padding:6px 10px;margin:6px 0}
.tag{display:inline-block;padding:0 6px;border-radius:9px;background:#eef2ff;color:#3538cd;font-size:12px;margin-right:4px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
"""

_JS = r"""
(function(){
function numOf(s){if(s===null||s===undefined)return NaN;s=String(s).trim();if(s==='')return NaN;return Number(s);}
function cellKey(td){return td.hasAttribute('data-v')?td.getAttribute('data-v'):td.textContent;}
function applyFilters(table){
  var inputs=table.querySelectorAll('tr.filters input');var tests=[];
  inputs.forEach(function(inp){var q=inp.value.trim();if(!q)return;var col=+inp.getAttribute('data-col');
    var m=q.match(/^(<=|>=|!=|<|>|=)\s*(.*)$/);
    if(m){var op=m[1],rhs=m[2],rn=numOf(rhs);
      tests.push(function(tr){var v=cellKey(tr.children[col]),vn=numOf(v);
        var num=!isNaN(rn)&&!isNaN(vn);var a=num?vn:String(v).toLowerCase(),b=num?rn:rhs.toLowerCase();
        if(!num&&(op==='<'||op==='>'||op==='<='||op==='>='))return false;
        switch(op){case '<':return a<b;case '>':return a>b;case '<=':return a<=b;case '>=':return a>=b;
          case '=':return a===b;case '!=':return a!==b;}return true;});}
    else{var ql=q.toLowerCase();tests.push(function(tr){return tr.children[col].textContent.toLowerCase().indexOf(ql)>=0;});}
  });
  var shown=0;table.querySelectorAll('tbody tr').forEach(function(tr){
    var ok=tests.every(function(t){return t(tr);});tr.style.display=ok?'':'none';if(ok)shown++;});
  var rc=table.parentNode.querySelector('.rowcount');if(rc)rc.textContent=shown+' of '+table.tBodies[0].rows.length+' rows';
}
function sortBy(table,th,col){
  var asc=!th.classList.contains('asc');
  table.querySelectorAll('thead tr:first-child th').forEach(function(h){h.classList.remove('asc','desc');});
  th.classList.add(asc?'asc':'desc');var num=th.getAttribute('data-type')==='num';
  var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(r1,r2){var a=cellKey(r1.children[col]),b=cellKey(r2.children[col]);
    if(num){a=numOf(a);b=numOf(b);var na=isNaN(a),nb=isNaN(b);if(na&&nb)return 0;if(na)return 1;if(nb)return -1;return asc?a-b:b-a;}
    return asc?String(a).localeCompare(String(b)):String(b).localeCompare(String(a));});
  var frag=document.createDocumentFragment();rows.forEach(function(r){frag.appendChild(r);});body.appendChild(frag);
}
document.querySelectorAll('table.itable').forEach(function(table){
  if(table.classList.contains('sortable')){
    table.querySelectorAll('thead tr:first-child th').forEach(function(th,i){th.addEventListener('click',function(){sortBy(table,th,i);});});}
  table.querySelectorAll('tr.filters input').forEach(function(inp){inp.addEventListener('input',function(){applyFilters(table);});});
});
function drawFigure(div){
  if(div.getAttribute('data-drawn')||typeof Plotly==='undefined')return;
  var src=document.getElementById(div.getAttribute('data-fig'));if(!src)return;
  div.setAttribute('data-drawn','1');var fig=JSON.parse(src.textContent);
  Plotly.newPlot(div,fig.data||[],fig.layout||{},{responsive:true,displaylogo:false});
}
function visible(el){return el.offsetParent!==null;}
var pending=Array.prototype.slice.call(document.querySelectorAll('.plotly-lazy'));
if('IntersectionObserver' in window){
  var io=new IntersectionObserver(function(es){es.forEach(function(e){if(e.isIntersecting){drawFigure(e.target);io.unobserve(e.target);}});},{rootMargin:'200px'});
  pending.forEach(function(d){io.observe(d);});
}else{pending.forEach(function(d){if(visible(d))drawFigure(d);});}
document.addEventListener('toggle',function(ev){var d=ev.target;if(d.tagName==='DETAILS'&&d.open){
  d.querySelectorAll('.plotly-lazy').forEach(function(div){drawFigure(div);});}},true);
function openHash(){var id=decodeURIComponent(location.hash.slice(1));if(!id)return;var el=document.getElementById(id);
  if(!el)return;var p=el;while(p){if(p.tagName==='DETAILS')p.open=true;p=p.parentElement;}el.scrollIntoView();}
window.addEventListener('hashchange',openHash);openHash();
window.interpReport={applyFilters:applyFilters,drawFigure:drawFigure};
})();
"""


class Report:
    """A self-contained HTML report built from sections.

    Parameters
    ----------
    title:
        Shown in the page header and the browser tab.
    subtitle:
        Optional line under the title (e.g. provenance: model, data, date).

    Example
    -------
    >>> rep = Report("Heads of induction-2l")
    >>> _ = rep.add_section("Summary", ["<p>2 layers</p>", "<p>4 heads each</p>"])
    >>> "Summary" in rep.to_html()
    True
    """

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = str(title)
        self.subtitle = subtitle
        self._sections: list[tuple[str, str, Any]] = []
        self._ids: set[str] = set()
        self._head: list[str] = []

    def add_section(self, title: str, content: Any, section_id: str | None = None) -> str:
        """Add a section; ``content`` is an HTML string, a plotly Figure, a DataFrame or a list of those.

        Returns the section's HTML id (usable in links ``#id``).

        Parameters
        ----------
        title : str
            The section's heading (and, slugged, its id).
        content : str, Figure, DataFrame or list of those
            An HTML string, a plotly figure, a table, or a list of them, in order.
        section_id : str, optional
            The id to use instead of one made from the title.
        """
        _render(content)  # validate early, so a bad type fails where it was added
        sid = _slug(section_id or title, self._ids)
        self._sections.append((sid, str(title), content))
        return sid

    def add(self, result: Any, title: str | None = None, **options: Any) -> str:
        """Place any :class:`interp.results.Result` as a section (summary, figure, table); returns its id.

        A result may customise its section by overriding ``report_section(**options)`` (``options`` are
        passed on, e.g. ``max_cards=`` of a label result) and add styles to ``<head>`` (once per report)
        with ``report_head()``.

        Parameters
        ----------
        result : interp.results.Result
            Any result of the library (or of your own, on the contract).
        title : str, optional
            The section's heading (default: the result's class name).
        **options
            Passed to the result's ``report_section``.

        >>> from interp.results import Result
        >>> import pandas as pd
        >>> class Scores(Result):
        ...     def to_frame(self): return pd.DataFrame({"unit": [0, 1], "score": [0.2, 0.9]})
        >>> rep = Report("Demo")
        >>> rep.add(Scores(), title="Scores")
        'scores'
        """
        section = getattr(result, "report_section", None)
        if not callable(section):
            raise InputTypeError(f"Report.add takes a result of the library (with report_section()), got "
                                 f"{type(result).__name__}; use add_section for HTML, figures and tables")
        head = getattr(result, "report_head", None)
        if callable(head):
            text = head()
            if text and text not in self._head:
                self._head.append(text)
        name = title or getattr(result, "title", None)
        return self.add_section(name if isinstance(name, str) and name else type(result).__name__, section(**options))

    def add_table(self, title: str, frame: pd.DataFrame, sortable: bool = True, filterable: bool = True,
                  html_columns: Sequence[str] = (), max_rows: int | None = None, intro: str | None = None) -> str:
        """Add a section holding a table (sortable by header click, filterable per column).

        Parameters
        ----------
        title : str
            The section's heading.
        frame : pandas.DataFrame
            The table.
        sortable, filterable : bool
            Sort by a click on a header; a filter row under the header.
        html_columns : Sequence[str]
            Columns inserted as raw HTML.
        max_rows : int, optional
            Show only the first rows.
        intro : str, optional
            HTML placed above the table.
        """
        if not isinstance(frame, pd.DataFrame):
            raise InputTypeError(f"add_table needs a pandas DataFrame, got {type(frame).__name__}")
        content: list[Any] = [intro] if intro else []
        content.append(_Table(frame, sortable=sortable, filterable=filterable, html_columns=tuple(html_columns),
                              max_rows=max_rows))
        return self.add_section(title, content)

    def add_head(self, html_text: str) -> None:
        """Add raw HTML to ``<head>`` (e.g. a ``<style>`` block of a specialised report). No external links.

        Parameters
        ----------
        html_text : str
            HTML for ``<head>``, e.g. a ``<style>`` block (no external links: the report stays self-contained).
        """
        self._head.append(html_text)

    def to_html(self) -> str:
        """The whole document as a string (plotly.js embedded once if any figure needs it)."""
        body = [f'<section id="{sid}"><h2>{escape(title)}</h2>\n{_render(content)}\n</section>'
                for sid, title, content in self._sections]
        body_html = "\n".join(body)
        plotly_js = ""
        if "plotly-lazy" in body_html:
            from plotly.offline import get_plotlyjs

            plotly_js = f"<script>{get_plotlyjs()}</script>"
        toc = "".join(f'<a href="#{sid}">{escape(t)}</a>' for sid, t, _ in self._sections)
        sub = f'<div class="sub">{escape(self.subtitle)}</div>' if self.subtitle else ""
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{escape(self.title)}</title><style>{_CSS}</style>{''.join(self._head)}{plotly_js}</head>\n"
            f"<body><header><h1>{escape(self.title)}</h1>{sub}</header>"
            f'<nav class="toc">{toc}</nav><main>\n{body_html}\n</main>'
            f"<script>{_JS}</script></body></html>\n"
        )

    def write(self, path: str | os.PathLike) -> Path:
        """Write the report to ``path`` atomically and return the path.

        Parameters
        ----------
        path : str or PathLike
            The HTML file to write (its folder is created).
        """
        text = self.to_html()
        path = Path(path)

        def _write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)

        atomic_write(path, _write)
        return path

    def _repr_html_(self) -> str:  # pragma: no cover - notebook display
        return f"<p>Report {escape(self.title)!s}: {len(self._sections)} sections; call .write(path)</p>"


def json_dumps(obj: Any) -> str:
    """JSON for embedding in a ``<script type="application/json">`` block.

    Parameters
    ----------
    obj : Any
        A JSON-serialisable object.
    """
    return _script_json(json.dumps(obj, separators=(",", ":")))
