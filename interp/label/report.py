"""Neuron-label reports: one self-contained HTML file with an index table and one card per unit.

The index can be sorted and filtered by layer, label, score and phenomenon (type ``>0.8`` in the score
filter, ``induction`` in the phenomena filter...). Clicking a unit opens its card: label and score,
exemplars with the activating tokens highlighted (or the unit's trace with the behaviour for
recordings), histogram, vocabulary projections and concept tests. Everything is inline (plotly.js is
embedded once), so the file works offline with no server. Per-unit graphics are small inline SVGs,
which keeps a 1,536-unit layer well under 20 MB.

>>> res = label_neurons(model, "blocks.5.mlp.hook_post")                 # doctest: +SKIP
>>> build_label_report(res, "labels.html")                               # doctest: +SKIP
>>> Report("my report").add(res)    # the same section inside any report # doctest: +SKIP

The unit cards are built in :mod:`interp.label.cards`; ``make demo``'s label page is built by the CLI
(:mod:`interp.cli.demo`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..report.html import Report, escape
from .cards import CARD_CSS, label_section, unit_card
from .pipeline import LabelResult

__all__ = ["build_label_report", "label_section", "unit_card", "CARD_CSS"]


def build_label_report(results: LabelResult | Sequence[LabelResult], path: str | os.PathLike,
                       title: str = "Neuron labels", notes: Sequence[str] = (), max_cards: int | None = None,
                       extra: Sequence[Any] = ()) -> Path:
    """Write one self-contained HTML report for one or more :class:`LabelResult` and return its path.

    Parameters
    ----------
    results : LabelResult or sequence of LabelResult
        The results, one report section each.
    path : str or os.PathLike
        The HTML file to write.
    title : str, optional
        Page title (default ``"Neuron labels"``).
    notes : sequence of str, optional
        Notes shown first, in their own section.
    max_cards : int, optional
        Unit cards per result, best-scoring first; None: all.
    extra : sequence of Result, optional
        Further results shown after the labels, e.g. MILAN descriptions of visual units
        (:func:`interp.label.milan.describe_units`).
    """
    results = [results] if isinstance(results, LabelResult) else list(results)
    report = Report(title, subtitle=f"interp label report, {time.strftime('%Y-%m-%d %H:%M')}")
    if notes:
        report.add_section("Notes", "".join(f'<div class="note">{escape(n)}</div>' for n in notes))
    for i, res in enumerate(results):
        report.add(res, result_id=f"r{i}", max_cards=max_cards)
    for res in extra:
        report.add(res)
    return report.write(path)
