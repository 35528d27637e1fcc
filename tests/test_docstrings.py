"""Every public callable that takes parameters documents them in a numpydoc ``Parameters`` section.

The callables that do not yet are listed in ``tests/docstring_debt.txt``; the list may only shrink: a
public callable missing from it fails without its section, and an entry that gained one (or is gone)
fails until it is removed from the list (``python tests/test_docstrings.py --write`` rewrites it).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

PACKAGES = ("interp", "patching", "probes")
DEBT = Path(__file__).with_name("docstring_debt.txt")
SECTION = re.compile(r"^Parameters\n-{3,}\n", re.MULTILINE)


def public_callables() -> dict[str, object]:
    """``{qualified name: object}`` of public functions, classes and their public methods."""
    found: dict[str, object] = {}
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        modules = [pkg] + [importlib.import_module(i.name) for i in pkgutil.walk_packages(pkg.__path__, pkg_name + ".")
                           if not any(p.startswith("_") for p in i.name.split("."))]
        for module in modules:
            for name, obj in vars(module).items():
                if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                    continue
                if inspect.isfunction(obj):
                    found[f"{module.__name__}.{name}"] = obj
                elif inspect.isclass(obj):
                    found[f"{module.__name__}.{name}"] = obj
                    for attr, member in vars(obj).items():
                        if not attr.startswith("_") and inspect.isfunction(member):
                            found[f"{module.__name__}.{name}.{attr}"] = member
    return found


def _takes_parameters(obj: object) -> bool:
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    return any(p not in ("self", "cls") and params[p].kind not in (params[p].VAR_POSITIONAL, params[p].VAR_KEYWORD)
               for p in params)


def undocumented() -> list[str]:
    """Qualified names of the public callables with parameters and no ``Parameters`` section."""
    out = []
    for name, obj in public_callables().items():
        if not _takes_parameters(obj):
            continue
        doc = inspect.getdoc(obj) or ""
        if inspect.isclass(obj):
            doc += "\n" + (inspect.getdoc(obj.__init__) or "")
        if not SECTION.search(doc):
            out.append(name)
    return sorted(out)


def _debt() -> list[str]:
    return [line.strip() for line in DEBT.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_every_public_callable_documents_its_parameters():
    missing = sorted(set(undocumented()) - set(_debt()))
    assert not missing, f"give these a numpydoc 'Parameters' section: {missing}"


def test_the_docstring_debt_only_shrinks():
    paid = sorted(set(_debt()) - set(undocumented()))
    assert not paid, f"documented (or gone) now: remove them from {DEBT.name}: {paid}"


if __name__ == "__main__" and "--write" in sys.argv:
    names = undocumented()
    DEBT.write_text("# Public callables still without a numpydoc Parameters section (tests/test_docstrings.py).\n"
                    "# The list may only shrink.\n" + "\n".join(names) + "\n")
    print(f"{len(names)} entries written to {DEBT}")
