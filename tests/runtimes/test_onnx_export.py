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
from graphforge.runtimes.onnx import kernels as gf_kernels  # noqa: E402
from gf_testutil import EncoderLoss, MLPLoss, zip_outputs  # noqa: E402


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
        for got, want in zip_outputs(session.run([x, y]), gf.run(g, [x, y])):
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
        # native Attention only where onnxruntime has a kernel (it expands the op's body at 25+)
        assert ("Attention" in ops) == (opset >= 23 and gf_kernels.ort_runs_natively("Attention", opset)), opset
        got = gf_onnx.OrtSession(model).run([x, m])[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"opset {opset}")
    top = gf_onnx.max_opset()
    for native_ops, present in ((True, {"Attention", "Gelu", "LayerNormalization"}), (False, set()),
                                ({"Attention"}, {"Attention"})):
        model = gf.to_onnx(g, opset=top, native_ops=native_ops)
        ops = {n.op_type for n in model.graph.node}
        assert ops & {"Attention", "Gelu", "LayerNormalization"} == present, native_ops
        got = gf_onnx.OrtSession(model).run([x, m])[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"native_ops={native_ops}")
    np.testing.assert_allclose(gf.run(g, [x, m], backend="onnxruntime", native_ops=False)[0], want,
                               rtol=1e-5, atol=1e-6)
    for bad in ("Attention", {"Softmax"}, 3):
        with pytest.raises(gf.ExportError, match="native_ops"):
            gf.to_onnx(g, native_ops=bad)


def test_kernel_probe_matches_what_onnxruntime_runs(tmp_path):
    import onnxruntime as ort

    for opset in (17, 23, gf_onnx.max_opset()):
        for op, (shapes, attrs) in gf_kernels.COMPOSITE_OPS.items():
            if not gf_kernels.opset_has(op, opset):
                assert not gf_kernels.ort_runs_natively(op, opset)
                continue
            names = [f"i{k}" for k in range(len(shapes))]
            graph = onnx.helper.make_graph(
                [onnx.helper.make_node(op, names, ["y"], **attrs)], "one",
                [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in zip(names, shapes)],
                [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
            model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.optimized_model_filepath = str(tmp_path / f"{op}{opset}.onnx")
            ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
            ran = len(onnx.load(options.optimized_model_filepath).graph.node)
            assert gf_kernels.ort_runs_natively(op, opset) == (ran == 1), (op, opset, ran)


# ---- tight graphs ------------------------------------------------------------------------------------

def _ops(model):
    return [n.op_type for n in model.graph.node]


def test_graph_outputs_are_written_by_their_producers():
    mlp = gf.trace(nn.seq().add(nn.Linear(6, 4)).add_fn(gf.relu).add(nn.Linear(4, 2)),
                   gf.TensorSpec(("batch", 6)), seed=0)
    model = gf.to_onnx(mlp)
    assert _ops(model) == ["Gemm", "Relu", "Gemm"]
    assert model.graph.node[-1].output[0] == model.graph.output[0].name

    def f(x):
        y = gf.relu(x)
        return x, y, y, gf.constant(np.ones(3, np.float32))
    g = gf.trace(f, gf.TensorSpec(("batch", 3)))
    model = gf.to_onnx(g)
    # an input, a second name for one value and a constant each need an Identity; the first y does not
    assert sorted(_ops(model)) == ["Identity", "Identity", "Identity", "Relu"]
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    assert relu.output[0] == model.graph.output[1].name
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 3
    for got, want in zip_outputs(gf_onnx.OrtSession(model).run([x]), gf.run(g, x)):
        np.testing.assert_array_equal(got, want)


def test_symbolic_reshapes_use_constant_shapes():
    def f(x):
        b = x.shape[0]
        heads = gf.reshape(x, [b, 6, 2, 4])             # (batch, 6, 8) -> (batch, 6, 2, 4): 0 copies batch
        t = gf.transpose(heads, [0, 2, 1, 3])
        back = gf.reshape(gf.transpose(t, [0, 2, 1, 3]), [b, 6, 8])
        flat = gf.flatten(back, 1)                      # (batch, 48): Flatten(axis=1)
        rows = gf.reshape(back, [-1, 8])               # (6*batch, 8): -1 beside a static dim
        grid = gf.broadcast_to(gf.reshape(flat, [b, 1, 48]), [b, 3, 48])   # Expand with a constant shape
        return flat, rows, grid
    g = gf.trace(f, gf.TensorSpec(("batch", 6, 8)))
    model = gf.to_onnx(g)
    ops = _ops(model)
    assert not {"Shape", "Concat", "Gather"} & set(ops), ops
    assert "Flatten" in ops
    assert ops.count("Transpose") == 0, ops       # a transpose of a transpose that undoes it is nothing
    session = gf_onnx.OrtSession(model)
    rng = np.random.default_rng(5)
    for batch in (1, 7, 64):
        x = rng.standard_normal((batch, 6, 8)).astype(np.float32)
        for got, want in zip_outputs(session.run([x]), gf.run(g, x)):
            np.testing.assert_array_equal(got, want)


def test_reshape_that_needs_the_run_time_shape_still_computes_it():
    def f(x):
        b, s = x.shape[0], x.shape[1]
        return gf.reshape(x, [s, b]), gf.reshape(x, [b * s])   # (seq, batch) needs both dims at run time
    g = gf.trace(f, gf.TensorSpec(("batch", "seq")))
    model = gf.to_onnx(g)
    assert _ops(model).count("Shape") == 2 and _ops(model).count("Reshape") == 2, _ops(model)
    session = gf_onnx.OrtSession(model)
    for shape in ((1, 3), (4, 5), (0, 2), (3, 0)):
        x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
        swapped, flat = session.run([x])
        np.testing.assert_array_equal(swapped, x.reshape(shape[::-1]))
        np.testing.assert_array_equal(flat, x.reshape(-1))


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
        for g_, w, name in zip_outputs(got, want, tg.output_names):
            np.testing.assert_allclose(g_, w, rtol=1e-4, atol=1e-5, err_msg=name)


def test_weights_of_rank3_linears_are_stored_pre_transposed():
    """A (batch, seq, in) @ W^T linear reads a stored ``W.T`` instead of transposing W per call."""
    class Proj(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 4)

        def forward(self, x):
            return self.fc(x)

    g = gf.trace(Proj(), gf.TensorSpec(("batch", 5, 6), "float32"), seed=0)
    proto = gf.to_onnx(g)
    ops = [n.op_type for n in proto.graph.node]
    stored = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    assert "Transpose" not in ops and stored.get("fc.weight.T") == (6, 4) and "fc.weight" not in stored
    x = np.random.default_rng(0).standard_normal((3, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(gf.run(g, [x], backend="onnxruntime")[0], gf.run(g, [x])[0], rtol=1e-5, atol=1e-6)
    # overriding the weight at run time feeds it as an input: the Transpose is back, values follow
    w = np.ones((4, 6), np.float32)
    got = gf.run(g, [x], backend="onnxruntime", params={"fc.weight": w})[0]
    np.testing.assert_allclose(got, gf.run(g, [x], params={"fc.weight": w})[0], rtol=1e-5, atol=1e-5)


def test_ort_session_takes_thread_count_and_session_config(mlp_graph):
    """The server opens models through OrtSession with spinning off; the options reach onnxruntime."""
    width = mlp_graph.inputs[0].type.shape[1]
    x = np.random.default_rng(0).standard_normal((3, width)).astype(np.float32)
    plain = gf_onnx.OrtSession(mlp_graph)
    tuned = gf_onnx.OrtSession(mlp_graph, intra_op_threads=1,
                               session_config={"session.intra_op.allow_spinning": "0"})
    opts = tuned._session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    np.testing.assert_array_equal(plain.run([x])[0], tuned.run([x])[0])


def test_convolutions_write_their_kernel_shape():
    """ONNX lets Conv infer ``kernel_shape`` from the weight, but onnxruntime then recomputes it on
    every call; graphforge writes it, as torch.onnx does (plain, transposed and quantized convs)."""
    g = gf.trace(lambda x, w, wt: gf.conv_transpose2d(gf.conv2d(x, w, padding=1), wt),
                 gf.TensorSpec(("batch", 2, 8, 8)), gf.TensorSpec((4, 2, 3, 3)), gf.TensorSpec((4, 3, 2, 5)))
    model = gf.to_onnx(g)
    shapes = {n.op_type: [list(a.ints) for a in n.attribute if a.name == "kernel_shape"] for n in model.graph.node}
    assert shapes["Conv"] == [[3, 3]] and shapes["ConvTranspose"] == [[2, 5]]
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype(np.float32) for s in ((3, 2, 8, 8), (4, 2, 3, 3), (4, 3, 2, 5))]
    np.testing.assert_allclose(gf.run(g, args, backend="onnxruntime")[0], gf.run(g, args)[0], rtol=1e-4, atol=1e-4)
