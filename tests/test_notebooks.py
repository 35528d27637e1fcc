"""Every notebook in notebooks/ runs top to bottom (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    code = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]
    assert code and all(cell.get("execution_count") for cell in code), "a code cell did not run"
    outputs = [out for cell in code for out in cell.get("outputs", [])]
    rich = [out for out in outputs if out.get("output_type") in ("display_data", "execute_result")]
    assert rich, f"{path.name} shows no result (a table, a figure or a result's HTML)"
    stderr = "".join(out.get("text", "") for out in outputs if out.get("name") == "stderr")
    for problem in ("Traceback", "IProgress not found"):
        assert problem not in stderr, f"{path.name} printed {problem!r} on stderr:\n{stderr[-2000:]}"
