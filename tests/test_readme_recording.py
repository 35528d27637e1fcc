"""The README's "Bring your own recording" example runs as written (offline, on the files it writes)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_bring_your_own_recording_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Bring your own recording"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    import interp.data as D

    monkeypatch.setattr(D, "_REGISTRY", dict(D._REGISTRY))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    rec, found = scope["rec"], scope["found"]
    assert rec.shape == (3000, 60) and rec.attrs["dt"] == 0.1
    assert scope["trials"].coord("trial").tolist() == list(range(20))
    match = scope["interp"].decompose.match_assemblies(found, scope["planted"].members).to_frame()
    assert len(found.members) == 4 and match["auc"].min() >= 0.95
