"""Rebuild ``benchmarks/RESULTS.md`` from the files the benchmarks write under ``benchmarks/results/``.

Everything above the first ``---`` line of RESULTS.md (the introduction and the summary table against the
goals, written by hand) is kept; below it, every results file is copied verbatim, in the order of
:data:`SECTIONS`, under a comment naming its source. A results file that exists but is not listed is an
error, so a new benchmark cannot be left out silently.

Run (from the repository root)::

    python benchmarks/collect_results.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "RESULTS.md"
SECTIONS = ("capture.md", "store_reads.md", "patching.md", "faithfulness.md", "faithfulness_rules.md",
            "moe_faithfulness.md", "faithfulness_ig.md", "labels.md", "similarity.md", "paths.md", "paths_lm.md", "sae.md", "sae_long.md",
            "scale_sae.md", "scale_capture.md", "calibration.md")


def main() -> int:
    """Write RESULTS.md; return a process exit code."""
    head = RESULTS.read_text().split("\n---\n", 1)[0].rstrip("\n")
    files = {p.name for p in (ROOT / "results").glob("*.md")}
    unlisted = sorted(files - set(SECTIONS))
    if unlisted:
        print(f"results files not listed in SECTIONS: {unlisted}", file=sys.stderr)
        return 1
    parts = [head]
    for name in SECTIONS:
        if name in files:
            text = (ROOT / "results" / name).read_text().strip("\n")
            parts.append(f"<!-- from benchmarks/results/{name} -->\n{text}")
    RESULTS.write_text("\n\n---\n\n".join(parts) + "\n")
    print(f"wrote {RESULTS} ({len(parts) - 1} sections)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
