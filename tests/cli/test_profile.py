"""``graphforge profile FILE.py``: the sorted tables, trace.json and profile.png; typed errors."""
from __future__ import annotations

import json

import pytest

from cli_helpers import SMALL_MODEL, assert_clean_failure, run_cli, write


@pytest.mark.parametrize("backend", ["jax", "onnxruntime"])
def test_profile_prints_tables_and_writes_trace_and_chart(tmp_path, backend, capsys):
    from graphforge.cli import main

    path = write(tmp_path, "small.py", SMALL_MODEL)
    out = tmp_path / "prof"
    assert main(["profile", path, "--backend", backend, "--repeat", "3", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"on {backend}" in text and "fc1" in text and "small.py:" in text
    trace = json.loads((out / "trace.json").read_text())
    assert any(e.get("ph") == "X" for e in trace["traceEvents"])
    assert (out / "profile.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_file_is_a_clean_failure(tmp_path):
    proc = run_cli("profile", str(tmp_path / "nope.py"))
    assert_clean_failure(proc, "nope.py", "does not exist", code=2)
