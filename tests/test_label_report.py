"""Label reports: built from a small model and recordings, opened in a real headless Chromium.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them); it
is skipped, with the reason, when they are absent.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from interp.label.pipeline import LabelResult, label_neurons
from interp.label.report import build_label_report
from interp.label.stats import UnitStats


def _tiny_model():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_native(TransformerBridgeConfig(
        d_model=32, n_layers=2, n_heads=2, d_head=16, n_ctx=32, d_vocab=64, d_mlp=64, act_fn="gelu",
        normalization_type="LN", seed=0))


@pytest.fixture(scope="module")
def tiny_result():
    model = _tiny_model()
    tokens = torch.randint(0, 64, (30, 32), generator=torch.Generator().manual_seed(0))
    return label_neurons(model, "blocks.1.mlp.hook_post", tokens, k=6, window=(4, 2), n_random=100)


@pytest.fixture(scope="module")
def report_path(tiny_result, tmp_path_factory):
    return build_label_report(tiny_result, tmp_path_factory.mktemp("rep") / "labels.html", title="tiny labels")


def test_report_has_index_and_one_card_per_unit(report_path, tiny_result):
    text = Path(report_path).read_text()
    n = len(tiny_result.table)
    assert text.count('<details class="card"') == n
    assert text.count('<a href="#r0-L1-N') == n  # every index row links to its card
    assert "detection AUROC" in text and "Promotes (W_out · W_U)" in text


def _synthetic_large_result(n_units: int = 1536, k: int = 12, window=(10, 3)) -> LabelResult:
    """A LabelResult with the shapes of a real 1,536-neuron layer (random numbers, 50k-token vocabulary)."""
    g = torch.Generator().manual_seed(0)
    stats = UnitStats(n_units, k=k, window=window, max_token_types=512, n_positions=64)
    for _ in range(4):
        toks = torch.randint(0, 49152, (8, 64), generator=g)
        stats.update(torch.randn(8, 64, n_units, generator=g), tokens=toks)
    res = stats.result()
    table = pd.DataFrame({"unit": np.arange(n_units), "name": [f"L6.N{i}" for i in range(n_units)], "layer": 6,
                          "label": [f"fires on 'token{i}' (e.g. …some context [token{i}] here…); promotes 'a', 'b'"
                                    for i in range(n_units)],
                          "score": np.linspace(0.3, 1, n_units), "score_kind": "detection AUROC",
                          "simulation": np.nan, "phenomena": ["token-detector" if i % 7 == 0 else "" for i in range(n_units)],
                          "explainer": "templated", "error": "", "frequency": 0.5, "max": 3.0})
    decode = lambda ids: [f" tok{int(i) % 5000}" if int(i) >= 0 else "" for i in np.asarray(ids).reshape(-1)]  # noqa: E731
    return LabelResult("big layer", "neurons", "blocks.6.mlp.hook_post", table, stats=res, decode=decode)


def test_report_of_1536_units_stays_under_20_mb(tmp_path):
    path = build_label_report(_synthetic_large_result(), tmp_path / "big.html")
    size = path.stat().st_size
    assert size < 20 * 1024 * 1024, f"{size / 1e6:.1f} MB"


def _chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver; `make test` does it)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    profile = tempfile.mkdtemp(prefix="interp-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options), profile


@pytest.mark.browser
def test_report_in_headless_chromium(report_path, tiny_result, tmp_path):
    from selenium.webdriver.common.by import By

    driver, profile = _chromium()
    try:
        driver.set_page_load_timeout(60)
        driver.get(Path(report_path).resolve().as_uri())
        # no console errors (warnings are fine)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        assert driver.execute_script("return typeof Plotly") == "object"  # the embedded bundle loaded offline
        table = driver.find_element(By.CSS_SELECTOR, "table.itable")
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == len(tiny_result.table)
        # filter by score: only rows with score > 0.6 stay visible
        headers = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "thead tr:first-child th")]
        col = headers.index("score")
        box = table.find_elements(By.CSS_SELECTOR, "tr.filters input")[col]
        box.send_keys(">0.6")
        visible = [r for r in rows if r.is_displayed()]
        expected = int((tiny_result.table["score"] > 0.6).sum())
        assert len(visible) == expected and 0 < expected < len(rows)
        # sorting by score descending puts the best unit first
        header = table.find_elements(By.CSS_SELECTOR, "thead tr:first-child th")[col]
        header.click()
        header.click()
        first = [r for r in table.find_elements(By.CSS_SELECTOR, "tbody tr") if r.is_displayed()][0]
        best = tiny_result.table.sort_values("score", ascending=False)["name"].iloc[0]
        assert first.find_element(By.TAG_NAME, "a").text == best
        # clicking the unit opens its card
        first.find_element(By.TAG_NAME, "a").click()
        card = driver.find_element(By.ID, f"r0-{best.replace('.', '-')}")
        assert card.get_attribute("open") is not None
        assert card.find_element(By.CSS_SELECTOR, ".x i.c").is_displayed()  # highlighted exemplar token
        # figures render lazily when scrolled into view
        driver.execute_script("document.querySelector('.plotly-lazy').scrollIntoView()")
        driver.implicitly_wait(2)
        assert driver.execute_script("return document.querySelectorAll('.plotly-lazy[data-drawn]').length") >= 1
        shot = tmp_path / "label_report.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
