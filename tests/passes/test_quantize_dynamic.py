"""The ``quantize_dynamic`` pass (int8 weights, run-time activation quantization, integer products)."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf

from test_quantize import _data, _graph

pytest.importorskip("onnxruntime")


def test_dynamic_rewrite_uses_integer_products():
    g = _graph()
    x = _data()
    qg = gf.optimize(g, "quantize_dynamic")
    ops = qg.op_counts()
    assert ops["conv_integer"] == 1 and ops["matmul_integer"] == 2 and ops["dynamic_quantize_linear"] == 3
    assert "conv2d" not in ops and "linear" not in ops
    want = gf.run(g, x, backend="reference")[0]
    for backend in ("reference", "onnxruntime", "jax"):
        got = gf.run(qg, x, backend=backend)[0]
        assert np.abs(got - want).max() < 0.05 * np.abs(want).max(), backend
