"""A griffe extension for the API reference: interactive examples (``>>>`` lines and the output under
them) in any docstring become fenced Python code, so MkDocs shows them as code instead of reading
``x["a"][:2]`` as a markdown link."""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """Wrap every run of ``>>>``/``...`` lines, with the output lines that follow, in a python fence."""
    out: list[str] = []
    block: list[str] = []
    indent = ""
    for line in text.splitlines() + [""]:
        stripped = line.lstrip()
        if stripped.startswith(">>>"):
            if not block:
                indent = line[: len(line) - len(stripped)]
            block.append(line)
        elif block and stripped and not stripped.startswith("```"):
            block.append(line)  # a continuation (...) or an output line
        else:
            if block:
                out += [indent + "```python", *block, indent + "```"]
                block = []
            out.append(line)
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
