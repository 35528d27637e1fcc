"""The house's floors, measured from the code: no import cycle and no import running up a floor, deferred
imports (inside functions) included; imports under ``if TYPE_CHECKING:`` never run and are not counted.

Floors, bottom to top (ARCHITECTURE.md draws the same picture): everything else in ``interp`` (errors,
checks, tensor, results, report, engine, capture, store, models, data) < ``interp.stats`` <
``interp.similarity`` < ``interp.decompose`` < ``interp.label`` < ``probes`` < ``patching`` < ``interp.cli``.
The package ``interp`` itself is the public facade: it re-exports from the bottom floor and from
``interp.similarity``, so it stands on the similarity floor.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("interp", "patching", "probes")
FLOORS = {"interp": 0, "interp.stats": 1, "interp.similarity": 2, "interp.decompose": 3, "interp.label": 4,
          "probes": 5, "patching": 6, "interp.cli": 7, "interp.__main__": 7}
FACADES = {"interp": 2}


def modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of ``packages`` under ``root``."""
    found = {}
    for pkg in packages:
        for path in (root / pkg).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """``{module: modules it imports}``, top-level and deferred imports alike."""
    mods = modules(root, packages)
    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.ImportFrom):
                if node.module == "__future__":
                    continue
                base = node.module or ""
                if node.level:
                    here = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                    here = here[:len(here) - (node.level - 1)]
                    base = ".".join(here + ([node.module] if node.module else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                names = subs + ([base] if len(subs) < len(node.names) else [])
            else:
                names = [a.name for a in node.names]
            for name in names:
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != mod:
                    graph[mod].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def floor(module: str) -> int:
    """The floor of ``module``: the facade's, or that of the longest room prefix."""
    if module in FACADES:
        return FACADES[module]
    best = max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)
    return FLOORS[best]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``"a -> b"`` for every import of a module on a higher floor."""
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if floor(b) > floor(a))


def test_no_import_cycle_deferred_imports_included():
    assert cycles(import_graph(ROOT)) == []


def test_no_import_runs_up_a_floor():
    assert upward_imports(import_graph(ROOT)) == []


def test_an_injected_deferred_cycle_and_upward_import_are_found(tmp_path):
    pkg = tmp_path / "interp"
    (pkg / "stats").mkdir(parents=True)
    (pkg / "label").mkdir()
    for folder in (pkg, pkg / "stats", pkg / "label"):
        (folder / "__init__.py").write_text("")
    (pkg / "stats" / "a.py").write_text("def f():\n    from . import b\n    from ..label import c\n")
    (pkg / "stats" / "b.py").write_text("from .a import f\n")
    (pkg / "label" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                        "    from ..stats import a\n")
    graph = import_graph(tmp_path, ("interp",))
    assert cycles(graph) == [["interp.stats.a", "interp.stats.b"]]
    assert upward_imports(graph) == ["interp.stats.a -> interp.label.c"]


def test_progress_bars_come_from_one_place_and_are_quiet_in_logs():
    """Bars are interp._progress.tqdm's (one update per LOG_INTERVAL s when stderr is not a terminal)."""
    import io
    import sys

    from interp import _progress

    offenders = []
    for mod, path in modules(ROOT).items():
        if mod != "interp._progress" and re.search(r"^\s*(from tqdm|import tqdm)", path.read_text(), re.MULTILINE):
            offenders.append(mod)
    assert offenders == [], f"import tqdm through interp._progress: {offenders}"
    stream, sys.stderr = sys.stderr, io.StringIO()
    try:
        bar = _progress.tqdm(range(3), disable=False)
        assert bar.mininterval == _progress.LOG_INTERVAL
        bar.close()
    finally:
        sys.stderr = stream
