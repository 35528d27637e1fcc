"""Rebuild ``benchmarks/RESULTS.md`` from the files the benchmarks write under ``benchmarks/results/``.

Everything above the first ``---`` line of RESULTS.md (the introduction and the summary table against the
goals, written by hand) is kept; below it, every results file is copied verbatim, in the order of
:data:`SECTIONS`, under a comment naming its source. A results file that exists but is not listed is an
error, so a new benchmark cannot be left out silently, and so is a results file that does not say how its
numbers were made: a ``Command`` line, a ``Commit:`` line naming the measured tree and a ``Machine`` line.

Run (from the repository root)::

    python benchmarks/collect_results.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "RESULTS.md"
SECTIONS = ("capture.md", "store_reads.md", "store_safety.md", "patching.md", "faithfulness.md", "faithfulness_rules.md",
            "moe_faithfulness.md", "faithfulness_ig.md", "labels.md", "similarity.md", "similarity_floor.md",
            "paths.md", "paths_lm.md", "sae.md", "sae_long.md", "sae_step.md", "sae_step_scaling.md",
            "scale_sae.md", "scale_capture.md", "circuits.md", "calibration.md",
            "bare_arrays.md")


#: What every results file must state, as a line starting with the key (case-insensitive).
PROVENANCE = {"command": r"^\s*command\b", "commit": r"^\s*commit:\s*`?[0-9a-f]{7,40}", "machine": r"^\s*machine\b"}


def missing_provenance(text: str) -> list[str]:
    """The provenance keys (:data:`PROVENANCE`) that ``text`` does not state."""
    return [key for key, pattern in PROVENANCE.items() if not re.search(pattern, text, re.IGNORECASE | re.MULTILINE)]


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
            missing = missing_provenance(text)
            if missing:
                print(f"benchmarks/results/{name} does not state its {', '.join(missing)}: add a line "
                      f"'Command: ...', 'Commit: <hash>' and 'Machine: ...' near its top", file=sys.stderr)
                return 1
            parts.append(f"<!-- from benchmarks/results/{name} -->\n{text}")
    RESULTS.write_text("\n\n---\n\n".join(parts) + "\n")
    print(f"wrote {RESULTS} ({len(parts) - 1} sections)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
