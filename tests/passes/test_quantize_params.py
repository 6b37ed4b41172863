"""passes/quantize_params.py: int8 storage of the float parameters float ops read (tables per row,
vectors per tensor), embedding lookups that gather int8 rows, and what stays float."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.passes.quantize_params import MIN_SIZE, quantize_other_params, quantize_rows


def test_rows_are_quantized_symmetrically_per_row_vectors_per_tensor():
    t = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.5, -3.0]], np.float32)
    q, scale = quantize_rows(t)
    np.testing.assert_allclose(scale, [1 / 127, 1.0, 3 / 127], rtol=1e-6)  # an all-zero row: scale 1
    assert q.dtype == np.int8 and q[0, 1] == -127 and q[2, 0] == 127 and not q[1].any()
    np.testing.assert_allclose(q * scale[:, None], t, atol=scale.max() / 2 + 1e-7)
    v = np.linspace(-2, 1, 50).astype(np.float32)
    qv, sv = quantize_rows(v)
    assert sv.shape == () and np.abs(qv).max() == 127
    np.testing.assert_allclose(qv * sv, v, atol=float(sv) / 2 + 1e-7)


class _Tagger(nn.Module):
    """Token ids → embedding + positions → LayerNorm → linear; a tiny bias that stays float."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.positions = nn.Buffer(np.random.default_rng(5).standard_normal((4, 16)).astype(np.float32))
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 3)

    def forward(self, ids):
        return self.head(self.norm(self.embed(ids) + self.positions))


def _tagger():
    return gf.trace(_Tagger(), gf.TensorSpec(("batch", 4), "int64"), seed=0, training=False)


def _ids():
    return np.random.default_rng(0).integers(0, 50, (3, 4))


def test_other_params_become_int8_and_lookups_gather_int8_rows():
    g = _tagger()
    want = gf.run(g, _ids(), backend="reference")[0]
    q = g.copy()
    done = quantize_other_params(q)
    assert set(done) == {"embed.weight", "positions", "head.weight"}  # everything >= MIN_SIZE elements
    q.verify()
    assert "head.bias" in q.params and q.params["head.bias"].dtype == np.float32  # 3 < MIN_SIZE: float
    assert not any(a.dtype == np.float32 and a.size >= MIN_SIZE for a in q.params.values())
    lookup = next(n for n in q.nodes if n.op == "embedding" and n.inputs[0].type.dtype == "int8")
    assert lookup.inputs[0].type.shape == (50, 16)  # the table is gathered as int8, not dequantized whole
    assert "dequantize_linear" not in q.op_counts()
    for backend in ("reference", "onnxruntime"):
        got = gf.run(q, _ids(), backend=backend)[0]
        assert np.abs(got - want).max() < 0.02 * np.abs(want).max(), backend
    assert g.params["embed.weight"].dtype == np.float32  # (worked on the copy)


def test_float_mode_keeps_them_and_a_bad_mode_is_a_config_error():
    g = _tagger()
    assert quantize_other_params(g, mode="float") == [] and "embed.weight" in g.params
    with pytest.raises(gf.ConfigError, match="other_params"):
        quantize_other_params(g, mode="int4")
    with pytest.raises(gf.ConfigError, match="other_params"):
        gf.quantize(g, mode="int8-dynamic", other_params="int16")


def test_gf_quantize_stores_the_embedding_int8_in_onnx():
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    g = _tagger()
    qd = gf.quantize(g, mode="int8-dynamic")
    proto = gf.to_onnx(qd)
    tables = {(t.data_type, tuple(t.dims)) for t in proto.graph.initializer}
    assert (onnx.TensorProto.INT8, (50, 16)) in tables and (onnx.TensorProto.FLOAT, (50, 16)) not in tables
    assert (onnx.TensorProto.FLOAT16, (50, 1)) in tables  # the row scales, float16 values
    assert {"Gather", "MatMulInteger"} <= {n.op_type for n in proto.graph.node}
    keep = gf.quantize(g, mode="int8-dynamic", other_params="float")
    assert len(gf.to_onnx(keep).SerializeToString()) > len(proto.SerializeToString())
    want = gf.run(g, _ids(), backend="reference")[0]
    got = gf.run(qd, _ids(), backend="onnxruntime")[0]
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()
