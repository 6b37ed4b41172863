"""Every CLI command exits with the same code for the same kind of failure (apps/cli/exitcodes.py,
the table in docs/cli.md): bad input 2, failed check 1, lost peer 3, bug 70 — one line, no traceback."""
from __future__ import annotations

import contextlib
import io
import os
import re

import pytest

from graphforge.cli import exitcodes, main
from graphforge.errors import GraphforgeError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize("argv", [
    ["compile", "{tmp}/missing.py", "-o", "{tmp}/out.onnx"],
    ["show", "{tmp}/missing.onnx"],
    ["optimize", "{tmp}/missing.onnx", "-o", "{tmp}/out.onnx"],
    ["bench", "{tmp}/missing.py"],
    ["train", "{tmp}/missing.py"],
    ["serve", "{tmp}/missing.onnx"],
    ["profile", "{tmp}/missing.py"],
], ids=lambda a: a[0])
def test_missing_input_file_is_usage_error_for_every_command(argv, tmp_path):
    code, err = _cli([a.format(tmp=tmp_path) for a in argv])
    assert code == exitcodes.USAGE, err
    assert "missing" in err and "Traceback" not in err
    assert err.startswith(f"graphforge {argv[0]}") or "graphforge" in err.splitlines()[0]
    assert not os.path.exists(tmp_path / "out.onnx")


def test_no_command_is_usage_error():
    assert _cli([])[0] == exitcodes.USAGE


def test_optimize_output_mismatch_is_check_failed(tmp_path, monkeypatch):
    import numpy as np

    import graphforge as gf
    from graphforge.cli import optimize

    src = tmp_path / "in.onnx"
    gf.save_onnx(gf.trace(lambda x: gf.relu(x), gf.TensorSpec((2, 3))), str(src))

    def differ(a, b, feeds, rtol, atol):
        np.testing.assert_allclose(np.zeros(2), np.ones(2))

    monkeypatch.setattr(optimize, "compare_onnx_files", differ)
    code, err = _cli(["optimize", str(src), "-o", str(tmp_path / "out.onnx")])
    assert code == exitcodes.CHECK_FAILED, err
    assert "outputs differ" in err


COMMANDS = ["compile", "show", "optimize", "bench", "train", "serve", "profile"]


def test_every_command_is_covered_here_and_in_the_docs():
    """A command added later gets the same exit-code checks (and a row in docs/cli.md)."""
    from graphforge.cli import SUBCOMMANDS

    assert set(COMMANDS) == set(SUBCOMMANDS)
    text = open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8").read()
    assert set(re.findall(r"^\| `(\w+)`\s+\|", text, flags=re.M)) >= set(SUBCOMMANDS)


class _PeerLost(GraphforgeError):
    exit_code = exitcodes.PEER_FAILURE


@pytest.mark.parametrize("exc, code", [
    (GraphforgeError("bad input"), exitcodes.USAGE),
    (_PeerLost("peer 1 died; last good checkpoint step 3"), exitcodes.PEER_FAILURE),
    (RuntimeError("boom"), exitcodes.INTERNAL),
    (KeyError("k"), exitcodes.INTERNAL),
], ids=["typed", "peer", "runtime-error", "key-error"])
@pytest.mark.parametrize("command", COMMANDS)
def test_dispatcher_maps_every_escape_to_the_table(command, exc, code, monkeypatch, tmp_path):
    import importlib

    from graphforge.cli import SUBCOMMANDS

    module = importlib.import_module(f"graphforge.cli.{SUBCOMMANDS[command]}")

    def raising(args):
        raise exc

    monkeypatch.setattr(module, "run", raising)
    monkeypatch.delenv("GRAPHFORGE_TRACEBACK", raising=False)
    argv = {"compile": [command, "m.py", "-o", "o.onnx"], "optimize": [command, "m.onnx", "-o", "o.onnx"]}.get(
        command, [command, "m.onnx" if command in ("show", "serve") else "m.py"])
    got, err = _cli(argv)
    assert got == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    assert err.startswith(f"graphforge {command}: ")
    if code == exitcodes.INTERNAL:
        assert "bug" in err and type(exc).__name__ in err


def test_internal_error_traceback_on_request(monkeypatch):
    from graphforge.cli import show

    monkeypatch.setattr(show, "run", lambda args: 1 / 0)
    monkeypatch.setenv("GRAPHFORGE_TRACEBACK", "1")
    code, err = _cli(["show", "m.onnx"])
    assert code == exitcodes.INTERNAL and "Traceback" in err and "ZeroDivisionError" in err


def test_docs_table_matches_the_code():
    text = open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8").read()
    rows = dict(re.findall(r"^\| (\d+)\s+\| `(\w+)`", text, flags=re.M))
    assert {int(k): v for k, v in rows.items()} == exitcodes.TABLE
