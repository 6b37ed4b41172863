"""The snippets of docs/training.md's mixed precision, memory, remat and profiling sections run."""
from __future__ import annotations

import os
import re


DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "training.md")
SECTIONS = ("## Mixed precision", "## Memory: `gf.memory_report`", "## Rematerialisation: `nn.remat`, `gf.checkpoint`",
            "## Profiling: `gf.profile`, `graphforge profile`")


def test_sections_snippets_run_in_order(tmp_path, monkeypatch):
    text = open(DOC, encoding="utf-8").read()
    code = []
    for title in SECTIONS:
        assert title in text, title
        body = text.split(title, 1)[1].split("\n## ", 1)[0]
        code += re.findall(r"```python\n(.*?)```", body, re.S)
    assert len(code) == len(SECTIONS)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile("\n".join(code), DOC, "exec"), ns)  # noqa: S102 - the documentation's own code
    assert (tmp_path / "trace.json").exists() and (tmp_path / "profile.png").exists()
