"""``interp circuits``: edge attribution on induction-2l from the command line, writing the EAP-IG/MIB graph
file, the edge table and the HTML report; bad input exits with code 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from interp.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_circuits_on_induction_2l_writes_graph_csv_and_report(tmp_path, capsys):
    out = tmp_path / "circ"
    code = main(["circuits", "induction-2l", "--data", "induction", "--n", "6", "--metric", "logit_diff",
                 "--method", "eap-ig", "--steps", "3", "--top", "10%", "--selection", "connected", "--quiet",
                 "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "faithfulness of the circuit" in text and "81 edges" in text
    graph = json.loads((out / "graph.json").read_text())
    assert set(graph) == {"cfg", "nodes", "edges"} and len(graph["edges"]) == 81
    kept = {e for e, v in graph["edges"].items() if v["in_graph"]}
    assert len(kept) >= int(0.1 * 81) and any(e.endswith("->logits") for e in kept)
    frame = pd.read_csv(out / "edges.csv")
    assert {"edge", "source", "target", "effect", "in_circuit"} <= set(frame.columns) and len(frame) == 81
    assert set(frame.loc[frame.in_circuit, "edge"]) == kept
    assert abs(frame.set_index("edge").effect[sorted(kept)[0]] - graph["edges"][sorted(kept)[0]]["score"]) < 1e-9
    html = (out / "report.html").read_text()
    assert "eap-ig edge scores" in html and "circuit:" in html
    faith = float(text.split("faithfulness of the circuit (patching ablation): ")[1].split()[0])
    assert faith > 0.5


def test_circuits_bad_input_exits_2(tmp_path, capsys):
    assert main(["circuits", "induction-2l", "--metric", "logit_diff", "--out", str(tmp_path)]) == 2
    assert "--clean" in capsys.readouterr().err
    assert main(["circuits", "induction-2l", "--data", "induction", "--clean", "x", "--corrupted", "y",
                 "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main(["circuits", "induction-2l", "--data", "induction", "--top", "0%", "--out", str(tmp_path)])
