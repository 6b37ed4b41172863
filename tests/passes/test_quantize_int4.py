"""The ``quantize_int4`` pass (4-bit blocked weights, weight-only)."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf

from test_quantize import _data, _graph

pytest.importorskip("onnxruntime")


def test_int4_weight_rewrite_is_blocked_and_weight_only():
    g = _graph()
    qg = gf.quantize(g, mode="int4-weight", block_size=4)
    dq = [n for n in qg.nodes if n.op == "dequantize_linear"]
    assert len(dq) == 3
    by_scope = {n.scope: n for n in dq}
    assert by_scope["conv"].attrs["block_size"] == 0  # per output channel for the conv
    assert by_scope["fc1"].attrs == {"axis": 1, "block_size": 4}
    stored = qg.params[by_scope["fc1"].inputs[0].name]
    assert stored.min() >= -8 and stored.max() <= 7
    x = _data()
    want = gf.run(g, x, backend="reference")[0]
    got = gf.run(qg, x, backend="onnxruntime")[0]
    assert np.abs(got - want).max() < 0.15 * np.abs(want).max()
    assert "quantize_linear" not in qg.op_counts()
