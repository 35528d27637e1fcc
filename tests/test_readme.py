"""The README's examples run.

Every ```python block of README.md runs, in order, in one namespace (the tour builds on earlier blocks:
``store`` from the capture block is decomposed later). Names the tour takes as given (``texts``,
``images``, a recording ``rec``) are defined by an HTML comment right before a block, invisible on GitHub::

    <!-- test: setup (why)
    texts = [...]
    -->

A block that another test runs with checks of its own is marked ``<!-- test: skip (which test) -->``.

Printed outputs are checked, so the README cannot show what its code does not print: an expression line
ending in ``# → TEXT`` must have ``repr(value) == TEXT`` (``TEXT...`` : a prefix), and the comment lines
``# | ...`` right after a statement are exactly what it prints (:func:`run_checked`).

Bash blocks are not executed: ``make demo``/``make test`` create the environment and run the whole suite,
and ``interp label smollm2-135m --n-tokens 20000`` labels for minutes. Instead every ``interp ...`` command
line of the README (bash blocks and inline code) is parsed by the CLI's own argument parser, and the study
files it names are validated, so a renamed flag or a broken example file fails here.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"(?:<!-- test: (?P<mark>setup|skip)(?P<note>[^\n]*)\n(?:(?P<setup>(?:(?!```).)*?)-->\s*\n)?)?"
                   r"```python\n(?P<code>.*?)```", re.S)


def python_blocks() -> list[tuple[str, str]]:
    """``(setup, code)`` of every python block to run, in order (blocks marked ``skip`` are left out)."""
    blocks = []
    for m in BLOCK.finditer(README):
        if m.group("mark") == "skip":
            assert re.search(r"tests/test_\w+\.py", m.group("note")), "a skipped block names the test that runs it"
            continue
        blocks.append((m.group("setup") or "", m.group("code")))
    return blocks


def interp_commands() -> list[str]:
    """Every ``interp ...`` command line: lines of bash blocks and inline code spans."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        lines += [line.split("#")[0].strip() for line in block.splitlines()]
    lines += re.findall(r"`(interp [^`]+)`", README)
    placeholder = ("...", "SUBCOMMAND")  # "interp SUBCOMMAND --help", "interp capture ... --dry-run" in prose
    return [line for line in lines if line.startswith("interp ") and not any(p in line for p in placeholder)]


ARROW = re.compile(r"#\s*→\s*(?P<text>.*?)\s*$", re.M)


def run_checked(code: str, namespace: dict, filename: str) -> int:
    """Run ``code`` statement by statement in ``namespace``, checking ``# → repr`` and ``# | stdout`` comments;
    returns how many checks ran."""
    lines = code.splitlines()
    checks = 0
    for stmt in ast.parse(code).body:
        end = stmt.end_lineno
        arrow = ARROW.search(lines[end - 1]) if isinstance(stmt, ast.Expr) else None
        printed, j = [], end
        while j < len(lines) and lines[j].lstrip().startswith("# |"):
            printed.append(lines[j].lstrip()[4:].rstrip())
            j += 1
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            if arrow:
                value = eval(compile(ast.Expression(stmt.value), filename, "eval"), namespace)
            else:
                exec(compile(ast.Module([stmt], type_ignores=[]), filename, "exec"), namespace)
        if arrow:
            text, shown = arrow.group("text"), repr(value)
            ok = shown.startswith(text[:-3]) if text.endswith("...") else shown == text
            assert ok, f"{filename} line {end}: the README says {text}, the code gives {shown}"
            checks += 1
        if printed:
            got = [line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines()]
            assert got == printed, f"{filename} line {end}: the README shows\n" + "\n".join(printed) + \
                "\nthe code prints\n" + "\n".join(got)
            checks += 1
    return checks


def test_readme_printed_outputs_match_what_the_code_prints(monkeypatch, tmp_path, one_thread):
    """The blocks that show output (``# →``, ``# |``) run on their own, with their setup, and print what they show."""
    monkeypatch.chdir(tmp_path)
    checked = 0
    for i, (setup, code) in enumerate(python_blocks()):
        if not (ARROW.search(code) or "# |" in code) or "interp.models.load" in code:
            continue
        namespace: dict = {"__name__": "__readme__"}
        exec("import interp", namespace)
        if setup:
            exec(compile(setup, f"README.md setup of python block {i + 1}", "exec"), namespace)
        checked += run_checked(code, namespace, f"README.md python block {i + 1}")
    assert checked >= 4


def test_readme_has_examples():
    assert len(python_blocks()) >= 5 and len(interp_commands()) >= 5
    assert all("```python" not in code for _, code in python_blocks())


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch, one_thread):
    """About 2 minutes of CPU on one thread (smollm2-135m, SNMF with the paper's 2,000 iterations, RSA of
    efficientnet-lite0 with 1,000 bootstraps, brain_alignment on 24 images); the rest is small."""
    monkeypatch.chdir(tmp_path)  # the tour writes a store to ./acts/
    namespace: dict = {"__name__": "__readme__"}
    for i, (setup, code) in enumerate(python_blocks()):
        if setup:
            exec(compile(setup, f"README.md setup of python block {i + 1}", "exec"), namespace)
        run_checked(code, namespace, f"README.md python block {i + 1}")
    # what the tour promises
    assert namespace["store"].n_rows == namespace["acts"].sizes["sample"] > 16  # one row per token
    assert namespace["truth"]["heads"].effect.shape == (2, 4)  # induction-2l: 2 layers x 4 heads
    assert callable(namespace["compare_rdms"]) and len(namespace["profile"].frame) > 1
    assert len(namespace["res"].to_frame()) >= 4  # brain_alignment: one row per channel group at least


@pytest.mark.parametrize("command", interp_commands())
def test_readme_interp_commands_parse(command):
    from interp.cli import build_parser

    argv = shlex.split(re.sub(r"\[([^\]]*)\]", r"\1", command))[1:]  # "[--resume]" -> "--resume"
    if not torch.cuda.is_available():  # --device must exist on the machine (checked when parsing): GPU examples
        argv = ["cpu" if a.startswith("cuda") and argv[i - 1] == "--device" else a for i, a in enumerate(argv)]
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]
    if argv[:2] == ["study", "run"]:
        from patching.study import load_config

        load_config(ROOT / args.study)
