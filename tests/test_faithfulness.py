"""patching.faithfulness: the RelP paper's evaluation (Pearson r with activation patching per component kind).

References: the committed numbers of ``benchmarks/results/faithfulness.md`` (induction-2l rows, reproduced
here from one call with the benchmark's configuration), and ``np.corrcoef`` / ``scipy.stats.spearmanr`` on
the cell effects of the four attribution methods. The rule preset ``"published"`` follows the RelP authors'
published usage (FarnoushRJ/RelP aa0e228: ``cfg.use_lrp`` set after construction, so the Identity rule,
chosen when the MLP is built, is inactive).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

import interp
import patching
from interp import ConfigError
from patching import datasets

pytestmark = pytest.mark.usefixtures("one_thread")

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "faithfulness.md"


def _committed(model: str) -> dict[tuple[str, str], float]:
    out = {}
    for line in RESULTS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] == model and re.fullmatch(r"-?\d+(\.\d+)?", cells[3]):
            out[(cells[1], cells[2])] = float(cells[3])
    return out


def test_faithfulness_reproduces_the_committed_induction_numbers():
    """``python benchmarks/faithfulness.py --induction-pairs 64 ... --ig-steps 8``: its induction-2l rows."""
    model, _ = interp.models.load("induction-2l")
    groups = [datasets.induction_pairs(32, seed=s, corrupt=c) for s, c in ((0, "key"), (1, "value"))]
    methods = {"AtP": ("atp", {}), "RelP": ("relp", {}), "RelP+AH": ("relp", {"rules": {"attention": True}}),
               "RelP w/o identity": ("relp", {"rules": "published"}), "IG (8 steps)": ("ig", {"steps": 8})}
    res = patching.faithfulness(model, groups, sites=["resid_pre", "attn_out", "heads"], methods=methods)
    committed = _committed("induction-2l")
    assert len(committed) == 18
    for row in res.to_frame().itertuples():
        assert round(row.pearson_r, 3) == pytest.approx(committed[(row.component, row.method)], abs=1.5e-3), row
    truth, est = res.values[("resid", "AtP")]
    assert res.to_frame().set_index(["component", "method"]).loc[("resid", "AtP"), "spearman_r"] == pytest.approx(
        scipy.stats.spearmanr(truth, est).statistic)
    assert "resid" in res.summary() and len(res.plot().data) == 5 and len(res.plot("heads").data) == 5


def test_faithfulness_single_batch_and_published_rules(tiny_bridge):
    import torch

    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 50, (4, 8), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 3] = torch.randint(0, 50, (4,), generator=gen)
    metric = patching.metrics.logit_diff(torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6, 7, 8]))
    res = patching.faithfulness(tiny_bridge, clean, corrupted, metric, sites=["resid_pre", "mlp_out"],
                                methods=["atp", "relp"])
    frame = res.to_frame().set_index(["component", "method"])
    truth = patching.activation_patching(tiny_bridge, clean, corrupted, metric, sites=["mlp_out"])["mlp_out"]
    atp = patching.attribution_patching(tiny_bridge, clean, corrupted, metric, sites=["mlp_out"])["mlp_out"]
    r = np.corrcoef(truth.effect[:, 3:].reshape(-1).double(), atp.effect[:, 3:].reshape(-1).double())[0, 1]
    assert frame.loc[("mlp_out", "atp"), "pearson_r"] == pytest.approx(r, abs=1e-9)
    assert frame.loc[("mlp_out", "atp"), "cells"] == 2 * 5  # positions before the first difference left out
    # the authors' published rules: LN (and Half) act, the Identity rule does not
    pub = patching.relevance_patching(tiny_bridge, clean, corrupted, metric, sites=["mlp_out"], rules="published")
    assert "identity" not in pub.extra["rules"] and pub.extra["rules"].get("ln")
    full = patching.relevance_patching(tiny_bridge, clean, corrupted, metric, sites=["mlp_out"])
    assert full.extra["rules"].get("identity")
    with pytest.raises(ConfigError, match="not an estimate"):
        patching.faithfulness(tiny_bridge, clean, corrupted, metric, methods=["activation"])
    with pytest.raises(ConfigError, match="prompt-pair groups"):
        patching.faithfulness(tiny_bridge, clean)
