"""ONNX export: symbolic batch in one file, external data, provenance, opsets, atomic save, and
whole models (TransformerEncoder forward, MLP and encoder gradient graphs) in onnxruntime."""
from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import graphforge as gf  # noqa: E402
from graphforge import nn  # noqa: E402
from graphforge.runtimes import onnx as gf_onnx  # noqa: E402
from graphforge.runtimes.onnx import export as gf_export  # noqa: E402
from gf_testutil import EncoderLoss, MLPLoss  # noqa: E402


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(16, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        b = x.shape[0]
        h = gf.reshape(x, [b, 16])              # (batch, 4, 4) -> (batch, 16): a symbolic reshape
        h = self.proj(h).relu()
        n = gf.dim_size(h, [0], "float32")       # the run-time batch size
        return self.head(h) / n


def _files(directory):
    return sorted(os.listdir(directory))


def test_symbolic_batch_one_file_serves_every_batch_size(tmp_path):
    g = gf.trace(_Block(), gf.TensorSpec(("batch", 4, 4)), seed=0)
    path = tmp_path / "block.onnx"
    gf.save_onnx(g, str(path))
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 4, 4]
    session = gf_onnx.OrtSession(str(path))
    rng = np.random.default_rng(0)
    for batch in (1, 7, 64):
        x = rng.standard_normal((batch, 4, 4)).astype(np.float32)
        got = session.run([x])[0]
        np.testing.assert_allclose(got, gf.run(g, x)[0], rtol=1e-5, atol=1e-6)
        assert got.shape == (batch, 3)


def test_product_dims_and_symbolic_broadcast():
    def f(x, y):
        flat = gf.reshape(x, [-1])               # "3*batch"
        wide = gf.broadcast_to(gf.reshape(y, [1, 1]), [x.shape[0], 3])
        return flat * 2.0, wide + x
    g = gf.trace(f, gf.TensorSpec(("batch", 3)), gf.TensorSpec((1,)))
    model = gf.to_onnx(g)
    out_dims = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == ["3*batch"]
    session = gf_onnx.OrtSession(model)
    for batch in (1, 5):
        x = np.arange(batch * 3, dtype=np.float32).reshape(batch, 3)
        y = np.array([0.5], np.float32)
        for got, want in zip(session.run([x, y]), gf.run(g, [x, y])):
            np.testing.assert_allclose(got, want)


def test_external_data_with_a_tiny_threshold(tmp_path):
    g = gf.trace(_Block(), gf.TensorSpec(("batch", 4, 4)), seed=0)
    path = tmp_path / "ext.onnx"
    gf.save_onnx(g, str(path), external_data_threshold=64)
    assert _files(tmp_path) == ["ext.onnx", "ext.onnx.data"]  # nothing temporary left behind
    head = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in head.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert "proj.weight" in external and "head.weight" in external
    # every external tensor lies inside the data file (nothing truncated)
    size = os.path.getsize(tmp_path / "ext.onnx.data")
    for t in head.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            assert int(info["offset"]) + int(info["length"]) <= size
    onnx.checker.check_model(str(path), full_check=True)
    x = np.random.default_rng(1).standard_normal((2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(gf_onnx.OrtSession(str(path)).run([x])[0], gf.run(g, x)[0], rtol=1e-5, atol=1e-6)
    full = onnx.load(str(path))
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(
        next(t for t in full.graph.initializer if t.name == "proj.weight")), g.params["proj.weight"])


def test_node_names_and_doc_strings_carry_provenance():
    g = gf.trace(_Block(), gf.TensorSpec(("batch", 4, 4)), seed=0)
    model = gf.to_onnx(g)
    proj = [n for n in model.graph.node if n.name.startswith("proj/")]
    assert proj, [n.name for n in model.graph.node]
    loc = next(n.loc for n in g.nodes if n.scope == "proj")
    assert loc.startswith("test_onnx_export.py:")
    assert all(n.doc_string == f"proj @ {loc}" for n in proj)
    assert len({n.name for n in model.graph.node}) == len(model.graph.node)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["graphforge_version"] == gf.__version__
    assert model.producer_name == "graphforge"


@pytest.mark.parametrize("bad", [16, 0, "17", 17.0, True, None])
def test_opset_outside_the_supported_range_is_a_typed_error(bad):
    g = gf.trace(lambda x: gf.relu(x), gf.TensorSpec((2,)))
    if bad is None:
        assert gf.to_onnx(g).opset_import[0].version == gf_onnx.max_opset()
        return
    with pytest.raises(gf.ExportError, match="opset"):
        gf.to_onnx(g, opset=bad)
    with pytest.raises(gf.GraphforgeError):
        gf.to_onnx(g, opset=gf_onnx.max_opset() + 1)


def test_every_supported_opset_exports_and_runs():
    def f(x, m):
        h = gf.layer_norm(x)
        h = gf.gelu(h)
        q = gf.reshape(h, [x.shape[0], 1, 4, 4])
        return gf.attention(q, q, q, m)
    g = gf.trace(f, gf.TensorSpec(("batch", 4, 4)), gf.TensorSpec((1, 1, 1, 4), "bool"))
    x = np.random.default_rng(2).standard_normal((2, 4, 4)).astype(np.float32)
    m = np.array([True, True, False, True]).reshape(1, 1, 1, 4)
    want = gf.run(g, [x, m])[0]
    assert gf_onnx.max_opset() >= 17
    for opset in range(17, gf_onnx.max_opset() + 1):
        model = gf.to_onnx(g, opset=opset)
        ops = {n.op_type for n in model.graph.node}
        assert "LayerNormalization" in ops
        assert ("Gelu" in ops) == (opset >= 20), opset
        assert ("Attention" in ops) == (opset >= 23), opset
        got = gf_onnx.OrtSession(model).run([x, m])[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"opset {opset}")


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    g = gf.trace(_Block(), gf.TensorSpec(("batch", 4, 4)), seed=0)
    path = tmp_path / "m.onnx"
    gf.save_onnx(g, str(path))
    before = path.read_bytes()

    def short_write(target, chunks):
        with open(target, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gf_export, "_write_fully", short_write)
    with pytest.raises(gf.ExportError, match="No space left"):
        gf.save_onnx(g, str(path), external_data_threshold=64)
    assert _files(tmp_path) == ["m.onnx"]          # no temp folder, no .data, no partial file
    assert path.read_bytes() == before             # the old file is untouched
    monkeypatch.undo()
    monkeypatch.delitem(gf_onnx.LOWERINGS, "relu")
    with pytest.raises(gf.UnsupportedOpError):
        gf.save_onnx(g, str(tmp_path / "new.onnx"))
    assert _files(tmp_path) == ["m.onnx"]


# ---- whole models ------------------------------------------------------------------------------------

class _Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.TransformerEncoder(num_layers=2, d_model=16, nhead=2, dim_feedforward=32, dropout=0.0)

    def forward(self, x):
        return self.enc(x)


@pytest.fixture(scope="module")
def encoder_graph():
    return gf.trace(_Encoder(), gf.TensorSpec(("batch", "seq", 16)), seed=0)


@pytest.mark.parametrize("opset", sorted({17, gf_onnx.max_opset()}))
def test_transformer_encoder_export_matches_reference(encoder_graph, opset):
    session = gf_onnx.OrtSession(encoder_graph, opset=opset)
    rng = np.random.default_rng(3)
    for batch, seq in ((1, 5), (3, 6)):
        x = rng.standard_normal((batch, seq, 16)).astype(np.float32)
        np.testing.assert_allclose(session.run([x])[0], gf.run(encoder_graph, x)[0], rtol=1e-4, atol=1e-5)


def test_gradient_graphs_run_in_onnxruntime():
    rng = np.random.default_rng(4)
    mlp = gf.trace(MLPLoss(), gf.TensorSpec(("batch", 12)), gf.TensorSpec(("batch",), "int64"), seed=0)
    enc = gf.trace(EncoderLoss(), gf.TensorSpec(("batch", 6, 16)), seed=0)
    cases = [(mlp, [rng.standard_normal((4, 12)).astype(np.float32), rng.integers(0, 5, 4)]),
             (enc, [rng.standard_normal((3, 6, 16)).astype(np.float32)])]
    for graph, arrays in cases:
        tg = gf.grad(graph, wrt="params")
        want = gf.run(tg, arrays)
        got = gf.run(tg, arrays, backend="onnxruntime")
        assert len(got) == 1 + len(graph.trainable_names)
        for g_, w, name in zip(got, want, tg.output_names):
            np.testing.assert_allclose(g_, w, rtol=1e-4, atol=1e-5, err_msg=name)
