"""Assemble the documentation site's sources, then build it with MkDocs (``make docs``).

The site is made from what the repository already holds, so it cannot drift from it:

* the README (home), ARCHITECTURE, CONTRIBUTING and the benchmark results, with links between them
  rewritten to the site's pages (a link to a repository file that is not a page becomes plain code text);
* the notebooks as tutorials (markdown and code cells; ``nbconvert`` without outputs);
* an API reference page per public module of ``interp``, ``patching`` and ``probes`` (mkdocstrings);
* a gallery: every public result type, built from the tiny synthetic instances of the result-contract
  test, shown as its summary and its plot (plotly, loaded from the site itself: the site works offline).

Run from the repository root::

    python docs/build.py            # sources into .docs_build/, the site into site/ (mkdocs build --strict)
    python docs/build.py --no-build # sources only
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / ".docs_build"
PACKAGES = ("interp", "patching", "probes")
PAGES = {"README.md": "index.md", "ARCHITECTURE.md": "architecture.md", "CONTRIBUTING.md": "contributing.md",
         "benchmarks/RESULTS.md": "benchmarks.md"}
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def public_modules() -> list[str]:
    """Dotted names of the public modules (no part starting with ``_``), packages first."""
    names = []
    for pkg in PACKAGES:
        module = importlib.import_module(pkg)
        names.append(pkg)
        for info in pkgutil.walk_packages(module.__path__, pkg + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return sorted(names)


def _rewrite_links(text: str, source: str, pages: dict[str, str]) -> str:
    """Point links at the site's pages; a link to any other repository file becomes its text in code."""
    base = (ROOT / source).parent

    def fix(match: re.Match) -> str:
        label, target = match.group(1), match.group(2)
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        rel = (base / path).resolve().relative_to(ROOT).as_posix() if (base / path).resolve().is_relative_to(ROOT) \
            else path
        if rel in pages:
            return f"[{label}]({pages[rel]}{'#' + anchor if anchor else ''})"
        return label if label.startswith("`") else f"{label} (`{rel}`)" if label != rel else f"`{rel}`"

    return LINK.sub(fix, text)


BRACKETS = re.compile(r"(?<![\\!\]])\[([^\[\]]*)\](?![(\[])")


def escape_intervals(text: str) -> str:
    """Escape brackets that are not links (``[0.047, 0.060]``, ``[95% CI] [by data set]``) outside code, which
    Markdown would read as reference-link labels."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and not line.startswith("    "):
            parts = line.split("`")
            line = "`".join(BRACKETS.sub(r"\\[\1\\]", p) if i % 2 == 0 else p for i, p in enumerate(parts))
        out.append(line)
    return "\n".join(out)


def tutorials(docs: Path) -> dict[str, str]:
    """``{notebook path: page}`` of the tutorials, and their markdown written into the sources."""
    import nbformat

    out = {}
    (docs / "tutorials").mkdir(parents=True, exist_ok=True)
    for nb_path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        parts = []
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                parts.append(cell.source)
            elif cell.cell_type == "code" and cell.source.strip():
                parts.append(f"```python\n{cell.source}\n```")
        page = f"tutorials/{nb_path.stem}.md"
        (docs / page).write_text("\n\n".join(parts) + "\n")
        out[nb_path.relative_to(ROOT).as_posix()] = page
    return out


def api_pages(docs: Path, modules: list[str]) -> list[str]:
    """One page per public module; returns the page paths."""
    (docs / "api").mkdir(parents=True, exist_ok=True)
    pages = []
    for name in modules:
        page = f"api/{name}.md"
        (docs / page).write_text(f"# `{name}`\n\n::: {name}\n")
        pages.append(page)
    return pages


def gallery(docs: Path) -> str:
    """The gallery page: every public result type's summary and plot, from the contract test's instances."""
    import html

    sys.path.insert(0, str(ROOT / "tests"))
    import test_result_contract as contract

    parts = ["# Gallery of results", "",
             "Every public result type, built from tiny synthetic data (the instances the result-contract test "
             "checks): its `summary()` and its `plot()`. In a notebook a result shows the plot above the summary; "
             "`Report().add(result)` places the same in an HTML report.", "",
             '<script src="assets/plotly.min.js"></script>']
    for name in sorted(contract.FACTORIES):
        result = contract.instance(name)
        fig = result.plot()
        parts += [f"## `{name}`", "", "<pre>" + html.escape(result.summary()) + "</pre>", "",
                  '<div class="interp-figure">' + fig.to_html(full_html=False, include_plotlyjs=False,
                                                              default_height=380) + "</div>", ""]
    (docs / "gallery.md").write_text("\n".join(parts))
    return "gallery.md"


def _copy_plotly(docs: Path) -> None:
    import plotly

    bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    (docs / "assets").mkdir(parents=True, exist_ok=True)
    shutil.copy(bundle, docs / "assets" / "plotly.min.js")


def _yaml_nav(nav: list[tuple[str, object]], indent: int = 2) -> str:
    lines = []
    for title, item in nav:
        if isinstance(item, list):
            lines.append(" " * indent + f"- {title!r}:")
            lines.append(_yaml_nav(item, indent + 4))
        else:
            lines.append(" " * indent + f"- {title!r}: {item}")
    return "\n".join(lines)


def assemble() -> None:
    """Write every source page into ``.docs_build/docs`` and ``mkdocs.yml`` beside it."""
    if SRC.exists():
        shutil.rmtree(SRC)
    docs = SRC / "docs"
    docs.mkdir(parents=True)
    tutorial_pages = tutorials(docs)
    pages = {**PAGES, **tutorial_pages}
    for source, page in PAGES.items():
        (docs / page).write_text(escape_intervals(_rewrite_links((ROOT / source).read_text(), source, pages)))
    api = api_pages(docs, public_modules())
    _copy_plotly(docs)
    gallery_page = gallery(docs)
    nav = [("Home", "index.md"), ("Tutorials", [(Path(p).stem, p) for p in tutorial_pages.values()]),
           ("Gallery", gallery_page), ("API reference", [(Path(p).stem, p) for p in api]),
           ("Architecture", "architecture.md"), ("Contributing", "contributing.md"),
           ("Benchmarks", "benchmarks.md")]
    config = (ROOT / "docs" / "mkdocs.yml").read_text() + "\nnav:\n" + _yaml_nav(nav) + "\n"
    (SRC / "mkdocs.yml").write_text(config)


def main(argv: list[str] | None = None) -> int:
    """Assemble the sources and (unless ``--no-build``) build the site into ``--out``; returns an exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "site"), help="where the built site goes (default site/)")
    parser.add_argument("--no-build", action="store_true", help="write the sources only")
    args = parser.parse_args(argv)
    assemble()
    if args.no_build:
        return 0
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-f", str(SRC / "mkdocs.yml"),
           "-d", str(Path(args.out).resolve())]
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
