"""The documentation site: built by ``make docs`` (``docs/build.py``, MkDocs in strict mode, so a broken
link or a docstring MkDocs cannot read fails the build), opened in headless Chromium."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doctest_blocks_become_code_fences():
    fence = _module(ROOT / "docs" / "griffe_doctest.py").fence_doctests
    text = 'Intro.\n\n    >>> res.extra["rules"]["ln"][:2]\n    [\'a\', \'b\']\n\nAfter.'
    assert fence(text) == ('Intro.\n\n    ```python\n    >>> res.extra["rules"]["ln"][:2]\n    [\'a\', \'b\']\n'
                           '    ```\n\nAfter.')
    assert fence("no examples") == "no examples"


def test_links_to_repository_files_become_text_and_pages_stay_links():
    build = _module(ROOT / "docs" / "build.py")
    pages = {"README.md": "index.md", "notebooks/02_patching.ipynb": "tutorials/02_patching.md"}
    text = "See [the tutorial](notebooks/02_patching.ipynb), [code](interp/tensor.py) and [web](https://x.org)."
    assert build._rewrite_links(text, "README.md", pages) == (
        "See [the tutorial](tutorials/02_patching.md), code (`interp/tensor.py`) and [web](https://x.org).")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    built = ROOT / "site" / "index.html"
    if built.exists():
        return built.parent
    out = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, str(ROOT / "docs" / "build.py"), "--out", str(out)], check=True, cwd=ROOT)
    return out


@pytest.mark.browser
def test_site_opens_in_headless_chromium(site):
    from selenium.webdriver.common.by import By
    from test_label_report import _chromium

    driver, _ = _chromium()
    try:
        driver.set_page_load_timeout(60)
        driver.get((site / "index.html").as_uri())
        assert "interp" in driver.title
        nav = driver.find_element(By.CSS_SELECTOR, "nav.md-nav").get_attribute("textContent")
        assert "API reference" in nav and "Tutorials" in nav and "Gallery" in nav
        driver.get((site / "api" / "patching.md").as_uri().replace(".md", ".html"))
        body = driver.find_element(By.TAG_NAME, "article").get_attribute("textContent")
        assert "activation_patching" in body and "relevance_patching" in body
        driver.get((site / "gallery.html").as_uri())
        assert driver.execute_script("return typeof Plotly") == "object"  # the bundle shipped with the site
        assert len(driver.find_elements(By.CSS_SELECTOR, ".interp-figure .plotly-graph-div")) >= 20
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()


def test_brackets_that_are_not_links_are_escaped_outside_code():
    build = _module(ROOT / "docs" / "build.py")
    text = "FPR [0.047, 0.060] [by data set], `x[1]`, [a link](y)\n```\n[1, 2]\n```"
    assert build.escape_intervals(text) == ("FPR \\[0.047, 0.060\\] \\[by data set\\], `x[1]`, [a link](y)\n```\n"
                                            "[1, 2]\n```")
