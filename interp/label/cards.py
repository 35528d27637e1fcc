"""Unit cards of the neuron-label report: the index table and one card per unit (what
:meth:`interp.label.LabelResult.report_section` places in any :class:`interp.report.Report`).

Per-unit graphics are small inline SVGs, which keeps a 1,536-unit layer well under 20 MB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..report.html import escape, table_html

if TYPE_CHECKING:
    from .pipeline import LabelResult

__all__ = ["label_section", "unit_card", "CARD_CSS"]

#: Styles of the unit cards; :meth:`LabelResult.report_head` gives them to :meth:`Report.add`.
CARD_CSS = """<style>
.x{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;white-space:pre-wrap;line-height:1.7;margin:2px 0;
 padding:2px 6px;background:#fafbfc;border-radius:4px}
.x i{font-style:normal;border-radius:2px}
.x .c{outline:1.5px solid #d92d20}
.p1{background:#fff1ec}.p2{background:#ffe0d4}.p3{background:#ffcdb9}.p4{background:#ffb89c}.p5{background:#ffa17e}
.p6{background:#fd8a62}.p7{background:#f77148}.p8{background:#ec5a33;color:#fff}.p9{background:#d9431f;color:#fff}
.n1{background:#eef4ff}.n2{background:#dbe8ff}.n3{background:#c4d9ff}.n4{background:#a9c7ff}.n5{background:#8cb3ff}
.n6{background:#6f9dfb;color:#fff}.n7{background:#5586f2;color:#fff}.n8{background:#3d6fe3;color:#fff}.n9{background:#2a58cc;color:#fff}
.cardgrid{display:grid;grid-template-columns:minmax(300px,3fr) minmax(220px,1.3fr);gap:14px}
.score{font-weight:600;padding:0 6px;border-radius:8px;background:#ecfdf3;color:#027a48}
.score.low{background:#fef3f2;color:#b42318}.score.mid{background:#fffaeb;color:#b54708}
.chips span{display:inline-block;font-family:ui-monospace,monospace;font-size:12px;background:#f2f4f7;border-radius:4px;
 padding:0 5px;margin:1px}
h4{margin:8px 0 4px;font-size:13px;color:#344054}
table.mini{border-collapse:collapse;font-size:12px}table.mini td,table.mini th{padding:1px 6px;border-bottom:1px solid #eee}
</style>"""


def _shade(value: float, vmax: float) -> str:
    if not math.isfinite(value) or vmax <= 0:
        return ""
    level = int(min(9, abs(value) / vmax * 9 + 0.5))
    if level == 0:
        return ""
    return f"p{level}" if value > 0 else f"n{level}"


def _tokens_html(strings: Sequence[str], acts: Sequence[float], centre: int, vmax: float) -> str:
    """Tokens of one exemplar, shaded by activation (hover for the value); the exemplar token is outlined."""
    out = []
    for i, (s, a) in enumerate(zip(strings, acts)):
        if s == "":
            continue
        s = escape(s.replace("\n", "⏎").replace("\t", "⇥"))
        a = float(a)
        cls = (_shade(a, vmax) + (" c" if i == centre else "")).strip()
        out.append(f'<i class="{cls}" title="{a:.2g}">{s}</i>' if cls else s)
    return '<div class="x">' + "".join(out) + "</div>"


def _hist_svg(counts: np.ndarray, edges: np.ndarray, width: int = 260, height: int = 70) -> str:
    """A compact histogram (one SVG path, log-scaled counts so the tail where exemplars live stays visible)."""
    counts = np.asarray(counts, float)
    if counts.sum() <= 0:
        return ""
    h = np.log1p(counts) / np.log1p(counts.max()) * (height - 16)
    bw = width / len(counts)
    base = height - 14
    path = f"M0 {base}" + "".join(f"V{base - v:.0f}H{(i + 1) * bw:.0f}" for i, v in enumerate(h)) + f"V{base}Z"
    lo, hi = edges[0], edges[-1]
    zero = ""
    if lo < 0 < hi:
        zx = (0 - lo) / (hi - lo) * width
        zero = f'<line x1="{zx:.0f}" x2="{zx:.0f}" y1="0" y2="{base}" stroke="#98a2b3" stroke-dasharray="2"/>'
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="histogram"><path d="{path}" fill="#6172f3"/>'
            f'{zero}<text x="0" y="{height - 2}" font-size="10">{lo:.3g}</text>'
            f'<text x="{width}" y="{height - 2}" font-size="10" text-anchor="end">{hi:.3g}</text></svg>'
            '<div class="muted" style="font-size:11px">activation histogram (log counts)</div>')


def _trace_svg(trace: np.ndarray, annotation: np.ndarray, width: int = 520, height: int = 90) -> str:
    x = np.asarray(trace, float)
    if len(x) < 2 or not np.isfinite(x).all():
        return ""
    a = np.asarray(annotation, float)
    if len(a) and not np.isfinite(a).all():  # missing annotation values (between trials) drawn at the minimum
        a = np.where(np.isfinite(a), a, np.nanmin(a) if np.isfinite(a).any() else 0.0)
    lo, hi = x.min(), x.max()
    span = hi - lo or 1.0
    n = len(x)
    pts = " ".join(f"{i / (n - 1) * width:.1f},{(height - 4) - (v - lo) / span * (height - 8):.1f}" for i, v in enumerate(x))
    shade = ""
    if len(a) == n:
        if set(np.unique(a)) <= {0.0, 1.0}:
            on = np.flatnonzero(np.diff(np.concatenate([[0], a, [0]])) != 0).reshape(-1, 2)
            shade = "".join(f'<rect x="{s / (n - 1) * width:.1f}" y="0" width="{max((e - s) / (n - 1) * width, 1):.1f}" '
                            f'height="{height}" fill="#fde4cf"/>' for s, e in on)
        else:
            alo, ahi = a.min(), a.max()
            aspan = ahi - alo or 1.0
            apts = " ".join(f"{i / (n - 1) * width:.1f},{(height - 4) - (v - alo) / aspan * (height - 8):.1f}"
                            for i, v in enumerate(a))
            shade = f'<polyline points="{apts}" fill="none" stroke="#f79009" stroke-width="1" opacity="0.7"/>'
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="trace">{shade}'
            f'<polyline points="{pts}" fill="none" stroke="#2f6fdf" stroke-width="1.2"/></svg>')


def _score_badge(score: float, kind: str, chance: float = float("nan")) -> str:
    """The score as a coloured badge; a score with a chance level (decoding accuracy) is coloured by how far
    above chance it lies, ``(score - chance) / (1 - chance)``, on the same scale as an AUROC."""
    if not isinstance(score, (int, float)) or not math.isfinite(score):
        return '<span class="muted">no score</span>'
    level = score
    if isinstance(chance, (int, float)) and math.isfinite(chance) and 0 < chance < 1:
        level = 0.5 + 0.5 * (score - chance) / (1 - chance)
        kind = f"{kind} (chance {chance:.2f})"
    cls = "" if level >= 0.75 else ("mid" if level >= 0.6 else "low")
    return f'<span class="score {cls}" title="{escape(kind)}">{score:.2f}</span> <span class="muted">{escape(kind)}</span>'


def _chips(tokens: Sequence[str]) -> str:
    return '<div class="chips">' + "".join(f"<span>{escape(repr(t))}</span>" for t in tokens) + "</div>"


def _card_id(result_id: str, name: str) -> str:
    return f"{result_id}-{''.join(ch if ch.isalnum() else '-' for ch in str(name))}"


def _card_name(result: LabelResult, row: Any) -> str:
    """What a card's HTML id is made of: the name, and for recorded units also the index (names may repeat)."""
    return f"{row['unit']}-{row['name']}" if result.kind == "recording" else str(row["name"])


def unit_card(result: LabelResult, row: pd.Series, result_id: str, n_top: int = 6, n_bottom: int = 2) -> str:
    """HTML of one unit's card (a closed ``<details>``; the index links open it).

    Parameters
    ----------
    result : LabelResult
        The labelling result the unit belongs to.
    row : pandas.Series
        The unit's row of ``result.table`` (``unit``, ``score``, ``label``, ...).
    result_id : str
        Prefix of the card's HTML id (unique per result in a report).
    n_top : int, optional
        Top exemplars shown (default 6).
    n_bottom : int, optional
        Bottom (most negative) exemplars shown (default 2; 0: none).
    """
    u = int(row["unit"])
    left_col: list[str] = []
    right_col: list[str] = []
    if row.get("error"):
        left_col.append(f'<div class="error">{escape(str(row["error"]))}</div>')
    stats = result.stats
    if stats is not None and result.decode is not None:
        vmax = float(max(abs(stats.maximum[u]), abs(stats.minimum[u]), 1e-9))
        centre = stats.window[0]
        left_col.append("<h4>Top exemplars</h4>")
        for j in range(min(n_top, stats.top_values.shape[1])):
            if stats.top_sample[u, j] >= 0:
                left_col.append(_tokens_html(result.decode(stats.top_tokens[u, j]), stats.top_window[u, j], centre, vmax))
        if n_bottom:
            left_col.append("<h4>Bottom exemplars</h4>")
            for j in range(min(n_bottom, stats.bottom_values.shape[1])):
                if stats.bottom_sample[u, j] >= 0:
                    left_col.append(_tokens_html(result.decode(stats.bottom_tokens[u, j]), stats.bottom_window[u, j],
                                                 centre, vmax))
        right_col.append(_hist_svg(stats.hist_counts[u], stats.hist_edges(u)))
        right_col.append(f'<div class="muted" style="font-size:12px">mean {stats.mean[u]:.3g}, sd {stats.std[u]:.3g}, '
                         f'max {stats.maximum[u]:.3g}, active {stats.frequency[u]:.1%}, token η² '
                         f'{stats.token_eta2()[u]:.2f}, position η² {stats.position_eta2()[u]:.2f}</div>')
        means = stats.token_means(u, top=6)
        if len(means):
            right_col.append("<h4>Highest mean activation by token</h4>" + _chips(
                [f"{result.decode([int(t)])[0]} {m:.2g}" for t, m in zip(means["token"], means["mean"])]))
    if result.vocab_out is not None:
        r = result.vocab_out.row(u)
        right_col.append("<h4>Promotes (W_out · W_U)</h4>" + _chips(result.vocab_out.top_tokens[r][:6]))
        right_col.append("<h4>Suppresses</h4>" + _chips(result.vocab_out.bottom_tokens[r][:6]))
        right_col.append(f'<div class="muted" style="font-size:12px">vocab kurtosis {result.vocab_out.kurtosis[r]:.1f}, '
                         f'skew {result.vocab_out.skew[r]:.2f}</div>')
    if result.vocab_in is not None:
        r = result.vocab_in.row(u)
        right_col.append(f"<h4>Reads (W_in through the LM head; top p={result.vocab_in.top_prob[r]:.2f})</h4>"
                         + _chips(result.vocab_in.top_tokens[r][:6]))
    if result.heads is not None:
        layer, head = divmod(u, result.heads.induction.shape[1])
        scores = "".join(f"<tr><td>{k.replace('_', '-')}</td><td>{getattr(result.heads, k)[layer, head]:.3f}</td></tr>"
                         for k in ("previous_token", "induction", "duplicate_token"))
        right_col.append(f'<h4>Head scores (labeling set)</h4><table class="mini">{scores}</table>')
        if result.head_example is not None:
            pat = result.head_example["patterns"][layer, head]
            left_col.append("<h4>Attention pattern on a held-out repeated sequence</h4>" + _pattern_svg(pat))
    trace_key = u if result.kind == "recording" and u in (result.traces or {}) else row["name"]
    if result.traces is not None and trace_key in result.traces and result.traces[trace_key]:
        tr = result.traces[trace_key]
        span = tr.get("span", f"first {len(tr['trace'])} samples")
        left_col.append(f"<h4>Trace ({escape(tr['recording'])}, {escape(span)}) with "
                        f"{escape(tr['concept'])} (orange)</h4>" + _trace_svg(tr["trace"], tr["annotation"]))
    if result.concepts is not None:
        key = result.site
        frame = result.concepts.frame
        if result.kind == "recording" and "unit" in frame and "units" not in row:  # one recording: join by index
            sub = frame[frame["unit"] == u]
        else:
            sub = frame[frame[key].astype(str) == str(row["name"])] if key in frame else None
        if sub is not None and len(sub):
            body = "".join(f"<tr><td>{escape(str(r.concept))}</td><td>{r.kind}</td><td>{r.statistic:.3f}</td>"
                           f"<td>{r.p_value:.3g}</td><td>{r.q_value:.3g}</td><td>{'✔' if r.significant else ''}</td></tr>"
                           for r in sub.itertuples())
            right_col.append(f'<h4>Concept tests ({escape(result.concepts.null)} null)</h4><table class="mini"><tr>'
                             f"<th>concept</th><th>test</th><th>stat</th><th>p</th><th>q</th><th></th></tr>{body}</table>")
    if result.place is not None:
        pf = result.place
        right_col.append(f'<div class="muted" style="font-size:12px">SI {pf.spatial_info[u]:.2f} bits/spike, '
                         f'shuffle p={pf.p_value[u]:.3g}, peak {pf.peak_rate[u]:.2f} Hz, {int(pf.n_spikes[u])} spikes '
                         f'while running, split-half r={pf.stability[u]:.2f}</div>')
        left_col.append("<h4>Rate map</h4>" + _trace_svg(pf.rate_maps[u], np.zeros(0)))
    sim = row.get("simulation")
    sim_txt = f", simulation r={sim:.2f}" if isinstance(sim, float) and math.isfinite(sim) else ""
    tags = "".join(f'<span class="tag">{escape(t.strip())}</span>' for t in str(row.get("phenomena", "")).split(",") if t.strip())
    summary = (f'<summary><b>{escape(str(row["name"]))}</b> {tags}<span>{escape(str(row["label"]))}</span>'
               f'<span style="margin-left:auto">{_score_badge(row["score"], str(row.get("score_kind", "")), row.get("chance", float("nan")))}'
               f"{escape(sim_txt)}</span></summary>")
    explainer = f'<div class="muted" style="font-size:12px">label by: {escape(str(row.get("explainer", "")))}</div>'
    body = (f'<div class="body">{explainer}<div class="cardgrid"><div>{"".join(left_col)}</div>'
            f'<div>{"".join(right_col)}</div></div></div>')
    return f'<details class="card" id="{_card_id(result_id, _card_name(result, row))}">{summary}{body}</details>'


def _pattern_svg(pattern: np.ndarray, size: int = 220) -> str:
    T = pattern.shape[0]
    c = size / T
    cells = []
    for i in range(T):
        for j in range(i + 1):
            v = float(pattern[i, j])
            if v > 0.02:
                cells.append(f'<rect x="{j * c:.1f}" y="{i * c:.1f}" width="{c:.2f}" height="{c:.2f}" fill-opacity="{min(v, 1):.2f}"/>')
    return (f'<svg width="{size}" height="{size}" role="img" aria-label="attention pattern" style="border:1px solid #ddd">'
            f'<g fill="#1d2939">{"".join(cells)}</g></svg><div class="muted" style="font-size:11px">rows: destination, '
            "columns: source</div>")


def label_section(result: LabelResult, result_id: str | None = None, max_cards: int | None = None) -> list[Any]:
    """What :meth:`LabelResult.report_section` places: overview (notes, figures), a sortable/filterable
    index linking to the cards, and the unit cards (``max_cards``: the best-scoring ones only).

    Parameters
    ----------
    result : LabelResult
        The labelling result.
    result_id : str, optional
        Prefix of the HTML ids; None: made from the result's title.
    max_cards : int, optional
        Cards for the best-scoring units only; None: one card per unit.
    """
    rid = result_id or "".join(ch if ch.isalnum() else "-" for ch in result.title.lower())[:40]
    table = result.table.copy()
    parts: list[Any] = [result._summary_html()] + [f"<p>{escape(n)}</p>" for n in result.notes]
    if result.heads is not None:
        parts.append(result.heads.plot())
    if result.place is not None:
        parts.append(result.place.plot())
    if result.concepts is not None and result.kind == "recording":
        parts.append(result.concepts.plot())
    if table["score"].notna().any():
        parts.append(result.plot())
    order = table.sort_values("score", ascending=False, na_position="last")
    if max_cards is not None:
        order = order.head(max_cards)
    carded = {_card_name(result, r) for _, r in order.iterrows()}
    index = table.copy()
    index.insert(0, "open", [f'<a href="#{_card_id(rid, _card_name(result, r))}">{escape(str(r["name"]))}</a>'
                             if _card_name(result, r) in carded else escape(str(r["name"])) for _, r in index.iterrows()])
    if result.kind == "recording":
        if "index" not in index.columns:
            index.insert(1, "index", index["unit"])
    keep = [c for c in ["open", "index", "quality", "units", "layer", "label", "score", "score_kind", "chance",
                        "simulation", "phenomena", "explainer",
                        "frequency", "max", "n_recordings", "previous_token", "induction", "duplicate_token",
                        "spatial_info", "p_value"] if c in index.columns]
    index = index[keep].rename(columns={"open": "unit"})
    if index["layer"].isna().all():
        index = index.drop(columns=["layer"])
    for col in ("simulation", "chance"):
        if col in index and index[col].isna().all():
            index = index.drop(columns=[col])
    index["label"] = index["label"].astype(str).str.slice(0, 160)
    parts.append("<h3>Index</h3>" + '<p class="muted">Click a header to sort; type in a filter box (text, or '
                 "<code>&gt;0.8</code>, <code>&lt;=3</code>, <code>=2</code>) to filter; click a unit to open its "
                 "card.</p>" + table_html(index, html_columns=["unit"]))
    parts.append("<h3>Units</h3>" + "\n".join(unit_card(result, row, rid) for _, row in order.iterrows()))
    return parts


