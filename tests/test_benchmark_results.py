"""Every benchmark results file says how its numbers were made (command, measured commit, machine)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "benchmarks"


def _collect():
    spec = importlib.util.spec_from_file_location("collect_results", ROOT / "collect_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", sorted((ROOT / "results").glob("*.md")), ids=lambda p: p.name)
def test_every_results_file_states_command_commit_and_machine(path):
    assert _collect().missing_provenance(path.read_text()) == []


def test_a_results_file_without_its_commit_is_refused():
    collect = _collect()
    text = "# x\n\nCommand: `python benchmarks/x.py`\nMachine: 2 cores\n"
    assert collect.missing_provenance(text) == ["commit"]
    assert collect.missing_provenance(text + "Commit: `ef047f2`\n") == []


def test_every_results_file_is_listed():
    collect = _collect()
    assert {p.name for p in (ROOT / "results").glob("*.md")} <= set(collect.SECTIONS)
