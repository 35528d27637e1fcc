"""A griffe extension for the API reference: interactive examples (``>>>`` lines and the output under
them) in any docstring become fenced Python code, so MkDocs shows them as code instead of reading
``x["a"][:2]`` as a markdown link."""

from __future__ import annotations

import re
from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """Make every run of ``>>>``/``...`` lines, with the output lines under it, read as code.

    In a numpydoc docstring (one with ``----`` section underlines) a run that is not already in an
    ``Examples`` section gets that section's header (numpydoc's parser reads its doctests as code);
    elsewhere the run is wrapped in a python fence.
    """
    numpy = re.search(r"^\s*-{3,}\s*$", text, re.MULTILINE) is not None
    out: list[str] = []
    block: list[str] = []
    indent, header, previous = "", "", ""
    for line in text.splitlines() + [""]:
        stripped = line.lstrip()
        if re.fullmatch(r"-{3,}", stripped) and previous:
            header = previous
        if stripped.startswith(">>>"):
            if not block:
                indent = line[: len(line) - len(stripped)]
            block.append(line)
        elif block and stripped and not stripped.startswith("```"):
            block.append(line)  # a continuation (...) or an output line
        else:
            if block and numpy:
                if header != "Examples":
                    out += [indent + "Examples", indent + "--------"]
                    header = "Examples"
                out += block
            elif block:
                out += [indent + "```python", *block, indent + "```"]
            block = []
            out.append(line)
        previous = stripped if stripped else previous
    return "\n".join(out[:-1])


class DoctestFences(griffe.Extension):
    """Fence the doctest blocks of every object's docstring."""

    def on_object(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)


class SharedParameters(griffe.Extension):
    """Write the attribution contract's shared parameters where a docstring says ``{shared_parameters}``
    (what :func:`patching.contract.attribution_method` does at import time, for the static reader)."""

    def on_object(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None and "{shared_parameters}" in obj.docstring.value:
            from patching.contract import fill_shared

            obj.docstring.value = fill_shared(obj.docstring.value)
