"""Control flow through ONNX: ``cond``/``scan``/``while_loop`` export to ``If``/``Scan``/``Loop`` (checked
models, run in onnxruntime against the reference and JAX), and ``If``/``Loop``/``Scan`` import back
into the same region ops (hand-written models: implicit outer captures, dynamic trip counts,
stacked scan outputs, axes and directions, nesting)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

pytest.importorskip("onnxruntime")

import graphforge as gf  # noqa: E402
from graphforge.runtimes.onnx_import import NeedsConstantError, from_onnx  # noqa: E402

BACKENDS = ("reference", "jax", "onnxruntime")


def _run_all(g, feed, backends=BACKENDS):
    return {b: [np.asarray(o) for o in gf.run(g, feed, backend=b)] for b in backends}


def _assert_all_equal(results, rtol=1e-5, atol=1e-6):
    want = results["reference"]
    for b, got in results.items():
        assert len(got) == len(want), b
        for gv, wv in zip(got, want):
            assert gv.shape == wv.shape and gv.dtype == wv.dtype, (b, gv.shape, gv.dtype, wv.shape, wv.dtype)
            np.testing.assert_allclose(gv, wv, rtol=rtol, atol=atol, err_msg=b)


def _ops(proto) -> set[str]:
    from graphforge.runtimes.onnx_import.importer import all_nodes

    return {n.op_type for n in all_nodes(proto.graph)}


# ---- op table: every sample of the three ops, exported and imported back ------------------------------

def _cf_samples():
    from jax_cases import sample_cases

    return [c for c in sample_cases() if c[1] in ("cond", "scan", "while_loop")]


@pytest.mark.parametrize("case", _cf_samples(), ids=lambda c: c[0])
def test_op_table_sample_round_trips_through_onnx(case):
    """graph → ONNX (If/Scan/Loop) → from_onnx → the same region op; equal results on the reference."""
    from jax_cases import make_inputs, one_node_graph

    _, op, _, sample = case
    graph = one_node_graph(op, sample)
    arrays = make_inputs(sample)
    want = gf.run(graph, arrays, backend="reference")
    proto = gf.to_onnx(graph)
    want_ops = {"cond": {"If"}, "scan": {"Scan", "Loop"}, "while_loop": {"Loop"}}[op]  # a scan without xs is a Loop
    assert want_ops & _ops(proto), _ops(proto)
    back = from_onnx(proto)
    assert any(n.op in ("cond", "scan", "while_loop") for n in back.walk())
    got = gf.run(back, dict(zip([v.name for v in back.inputs], arrays)), backend="reference")
    for gv, wv in zip(got, want):
        assert gv.dtype == wv.dtype and gv.shape == wv.shape
        np.testing.assert_allclose(gv, wv, rtol=1e-6, atol=1e-7)


# ---- the issue's three examples -------------------------------------------------------------------

def newton_sqrt(a):
    """sqrt(a) by Newton's iteration, until every element has converged (at most 50 steps)."""
    def keep_going(y):
        return gf.max(gf.abs(y * y - a)) > 1e-5

    def step(y):
        return 0.5 * (y + a / y)

    return gf.while_loop(keep_going, step, a, max_iterations=50)


def cumprod(x):
    """The running product along axis 0, by a scan."""
    def step(c, row):
        c = c * row
        return c, c

    _, ys = gf.scan(step, gf.ones((x.shape[1],)), x)
    return ys


def piecewise(x):
    """x*2 where sum(x) > 0, else -x + 1: one data-dependent branch."""
    return gf.cond(gf.sum(x) > 0, lambda v: v * 2.0, lambda v: 1.0 - v, x)


EXAMPLES = {
    "newton_while_loop": (newton_sqrt, gf.TensorSpec((4,), "float32", name="a"),
                          lambda rng: rng.uniform(0.5, 9.0, size=(4,)).astype(np.float32), "Loop"),
    "cumprod_scan": (cumprod, gf.TensorSpec((6, 3), "float32", name="x"),
                     lambda rng: rng.uniform(0.5, 1.5, size=(6, 3)).astype(np.float32), "Scan"),
    "piecewise_cond": (piecewise, gf.TensorSpec((5,), "float32", name="x"),
                       lambda rng: rng.normal(size=(5,)).astype(np.float32), "If"),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_issue_example_exports_runs_everywhere_and_round_trips(name, tmp_path):
    fn, spec, make, onnx_op = EXAMPLES[name]
    g = gf.trace(fn, spec)
    assert str(gf.parse(str(g))) == str(g)
    path = tmp_path / f"{name}.onnx"
    gf.save_onnx(g, path)
    proto = onnx.load(str(path))
    assert onnx_op in _ops(proto)
    rng = np.random.default_rng(0)
    for _ in range(2):
        feed = {spec.name: make(rng)}
        _assert_all_equal(_run_all(g, feed))
        # the file itself, in onnxruntime, and imported back into graphforge
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, feed)
        want = gf.run(g, feed, backend="reference")
        for gv, wv in zip(got, want):
            np.testing.assert_allclose(gv, wv, rtol=1e-5, atol=1e-6)
        back = from_onnx(str(path))
        for gv, wv in zip(gf.run(back, feed, backend="reference"), want):
            np.testing.assert_allclose(gv, wv, rtol=1e-5, atol=1e-6)
    if name == "newton_while_loop":
        np.testing.assert_allclose(want[0], np.sqrt(feed["a"]), rtol=1e-5)
    if name == "cumprod_scan":
        np.testing.assert_allclose(want[0], np.cumprod(feed["x"], axis=0), rtol=1e-5)


def test_piecewise_takes_both_branches():
    g = gf.trace(piecewise, gf.TensorSpec((5,), "float32", name="x"))
    x = np.arange(5, dtype=np.float32)
    for feed, want in (({"x": x}, x * 2), ({"x": -x}, 1 + x)):
        for b in BACKENDS:
            np.testing.assert_allclose(gf.run(g, feed, backend=b)[0], want)


# ---- export shapes: reverse, no xs (Loop), symbolic lengths, nesting, half types ----------------

def _check_everywhere(fn, specs, feeds, onnx_ops=(), rtol=1e-5, atol=1e-6):
    g = gf.trace(fn, *specs)
    proto = gf.to_onnx(g)
    assert set(onnx_ops) <= _ops(proto), _ops(proto)
    for feed in feeds:
        _assert_all_equal(_run_all(g, feed), rtol=rtol, atol=atol)
        back = from_onnx(proto)
        want = gf.run(g, feed, backend="reference")
        for gv, wv in zip(gf.run(back, feed, backend="reference"), want):
            np.testing.assert_allclose(gv, wv, rtol=rtol, atol=atol)
    return g, proto


def test_reverse_scan_with_symbolic_length_and_a_captured_weight():
    def f(x, w):
        def step(h, xt):
            h = gf.tanh(gf.matmul(w, h) + xt)
            return h, h * 2.0

        return gf.scan(step, gf.zeros((3,)), x, reverse=True)

    rng = np.random.default_rng(1)
    feeds = [{"x": rng.normal(size=(n, 3)).astype(np.float32), "w": rng.normal(size=(3, 3)).astype(np.float32)}
             for n in (4, 7)]
    _, proto = _check_everywhere(f, [gf.TensorSpec(("seq", 3), name="x"), gf.TensorSpec((3, 3), name="w")],
                                 feeds, {"Scan"})
    scan = next(n for n in proto.graph.node if n.op_type == "Scan")
    attrs = {a.name: helper.get_attribute_value(a) for a in scan.attribute}
    assert list(attrs["scan_input_directions"]) == [1] and list(attrs["scan_output_directions"]) == [1]


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_without_xs_is_a_counted_loop(reverse):
    def f(x):
        def step(c, _):
            c = c * 1.5 + 1.0
            return c, c

        return gf.scan(step, x, None, length=5, reverse=reverse)

    feeds = [{"x": np.arange(3, dtype=np.float32)}]
    _check_everywhere(f, [gf.TensorSpec((3,), name="x")], feeds, {"Loop"})


def test_nested_cond_inside_scan_inside_while():
    def f(x, limit):
        def body(c):
            def step(h, xt):
                h2 = gf.cond(gf.sum(xt) > 0, lambda a, b: a + b, lambda a, b: a - b * 0.5, h, xt)
                return h2, gf.sum(h2)

            h, ys = gf.scan(step, c, x)
            return h + gf.sum(ys) * 0.01

        return gf.while_loop(lambda c: gf.sum(gf.abs(c)) < limit, body, gf.zeros((2,)) + 0.1, max_iterations=20)

    rng = np.random.default_rng(2)
    feeds = [{"x": rng.normal(size=(4, 2)).astype(np.float32), "limit": np.float32(v)} for v in (5.0, 50.0)]
    _check_everywhere(f, [gf.TensorSpec((4, 2), name="x"), gf.TensorSpec((), name="limit")], feeds,
                      {"Loop"}, rtol=1e-4, atol=1e-5)


def test_unbounded_while_loop_with_integer_carry():
    def f(n):
        def body(c):
            i, acc = c
            return i + 1, acc * 2

        return gf.while_loop(lambda c: c[0] < n, body, (gf.zeros((), "int64"), gf.ones((), "int64")))

    feeds = [{"n": np.int64(v)} for v in (0, 3, 10)]
    g, proto = _check_everywhere(f, [gf.TensorSpec((), "int64", name="n")], feeds, {"Loop"})
    loop = next(n for n in proto.graph.node if n.op_type == "Loop")
    assert loop.input[0] == ""  # no max_iterations: no trip count
    assert [int(v) for v in gf.run(g, {"n": np.int64(10)}, backend="onnxruntime")[1:]] == [1024]


def test_cond_with_a_float_predicate_and_two_outputs():
    def f(p, x):
        return gf.cond(p, lambda a: (a + 1.0, a * a), lambda a: (a - 1.0, -a), x)

    feeds = [{"p": np.float32(v), "x": np.arange(3, dtype=np.float32)} for v in (0.0, 2.5, float("nan"))]
    _check_everywhere(f, [gf.TensorSpec((), name="p"), gf.TensorSpec((3,), name="x")], feeds, {"If"})


def test_export_names_subgraphs_after_the_node_and_keeps_provenance():
    g = gf.trace(piecewise, gf.TensorSpec((5,), "float32", name="x"))
    proto = gf.to_onnx(g)
    node = next(n for n in proto.graph.node if n.op_type == "If")
    branches = [helper.get_attribute_value(a) for a in node.attribute]
    assert all(b.name.endswith(("_then", "_else")) for b in branches)
    assert "test_onnx_control_flow.py" in node.doc_string
    inner = [n for b in branches for n in b.node]
    assert inner and all("test_onnx_control_flow.py" in n.doc_string for n in inner if n.op_type != "Identity")


# ---- import of hand-written ONNX control flow ---------------------------------------------------

def _model(nodes, inputs, outputs, opset=17, inits=()):
    graph = helper.make_graph(nodes, "m", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _ort(model, feed):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {k: np.asarray(v) for k, v in feed.items()})


def _check_import(model, feed, op, backends=BACKENDS):
    g = from_onnx(model)
    assert op in g.op_counts() or any(n.op == op for n in g.walk())
    want = _ort(model, feed)
    for b in backends:
        got = gf.run(g, feed, backend=b)
        for gv, wv in zip(got, want):
            np.testing.assert_allclose(np.asarray(gv), wv, rtol=1e-5, atol=1e-6, err_msg=b)
    return g


def test_import_if_with_different_implicit_captures_per_branch():
    F = TensorProto.FLOAT
    then_g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["t"])], "then", [], [_vi("t", F, [3])])
    else_g = helper.make_graph([helper.make_node("Mul", ["b", "c"], ["e"])], "else", [], [_vi("e", F, [3])])
    model = _model([helper.make_node("If", ["p"], ["y"], then_branch=then_g, else_branch=else_g)],
                   [_vi("p", TensorProto.BOOL, []), _vi("a", F, [3]), _vi("b", F, [3]), _vi("c", F, [3])],
                   [_vi("y", F, [3])])
    rng = np.random.default_rng(3)
    for p in (True, False):
        feed = {"p": np.array(p), **{k: rng.normal(size=3).astype(np.float32) for k in "abc"}}
        g = _check_import(model, feed, "cond")
    text = str(g)
    assert str(gf.parse(text)) == text


def test_import_loop_with_dynamic_trip_count_and_condition_is_a_while_loop():
    F, I, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
    body = helper.make_graph(
        [helper.make_node("Mul", ["x_in", "scale"], ["x_out"]),
         helper.make_node("ReduceSum", ["x_out"], ["s"], keepdims=0),
         helper.make_node("Less", ["s", "limit"], ["c_out"])],
        "body", [_vi("i", I, []), _vi("c_in", B, []), _vi("x_in", F, [2])],
        [_vi("c_out", B, []), _vi("x_out", F, [2])])
    model = _model([helper.make_node("Loop", ["M", "c0", "x0"], ["x"], body=body)],
                   [_vi("M", I, []), _vi("c0", B, []), _vi("x0", F, [2]), _vi("scale", F, []), _vi("limit", F, [])],
                   [_vi("x", F, [2])])
    for m, c0, limit in ((10, True, 100.0), (2, True, 1e9), (10, False, 100.0), (0, True, 5.0)):
        feed = {"M": np.int64(m), "c0": np.array(c0), "x0": np.array([1.0, 2.0], np.float32),
                "scale": np.float32(2.0), "limit": np.float32(limit)}
        _check_import(model, feed, "while_loop")


def test_import_counted_loop_with_scan_outputs_is_a_scan():
    F, I, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=F),
         helper.make_node("Add", ["acc_in", "fi"], ["acc_out"]),
         helper.make_node("Mul", ["acc_out", "w"], ["row"]),
         helper.make_node("Identity", ["c_in"], ["c_out"])],
        "body", [_vi("i", I, []), _vi("c_in", B, []), _vi("acc_in", F, [2])],
        [_vi("c_out", B, []), _vi("acc_out", F, [2]), _vi("row", F, [2])])
    trip = helper.make_tensor("M", I, [], [6])
    model = _model([helper.make_node("Loop", ["M", "", "acc0"], ["acc", "rows"], body=body)],
                   [_vi("acc0", F, [2]), _vi("w", F, [2])], [_vi("acc", F, [2]), _vi("rows", F, [6, 2])],
                   inits=[trip])
    feed = {"acc0": np.array([0.5, -1.0], np.float32), "w": np.array([2.0, 3.0], np.float32)}
    g = _check_import(model, feed, "scan")
    assert not any(n.op == "while_loop" for n in g.walk())


def test_import_loop_stacking_outputs_needs_its_trip_count():
    F, I, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Identity", ["x_in"], ["x_out"]),
         helper.make_node("Identity", ["x_in"], ["row"])],
        "body", [_vi("i", I, []), _vi("c_in", B, []), _vi("x_in", F, [2])],
        [_vi("c_out", B, []), _vi("x_out", F, [2]), _vi("row", F, [2])])
    model = _model([helper.make_node("Loop", ["M", "", "x0"], ["x", "rows"], body=body)],
                   [_vi("M", I, []), _vi("x0", F, [2])], [_vi("x", F, [2]), _vi("rows", F, ["n", 2])])
    with pytest.raises(NeedsConstantError) as info:
        from_onnx(model)
    assert info.value.tensor == "M"
    g = from_onnx(model, constant_inputs={"M": np.int64(3)})
    out = gf.run(g, {"x0": np.array([1.0, 2.0], np.float32)}, backend="reference")
    np.testing.assert_allclose(out[1], np.tile([1.0, 2.0], (3, 1)))


def test_import_scan_axes_and_mixed_directions():
    F = TensorProto.FLOAT
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "a"], ["s_out"]),
         helper.make_node("Mul", ["s_out", "b"], ["y1"]),
         helper.make_node("Sub", ["a", "b"], ["y2"])],
        "body", [_vi("s_in", F, [3]), _vi("a", F, [3]), _vi("b", F, [3])],
        [_vi("s_out", F, [3]), _vi("y1", F, [3]), _vi("y2", F, [3])])
    model = _model([helper.make_node("Scan", ["s0", "xa", "xb"], ["s", "ya", "yb"], body=body, num_scan_inputs=2,
                                     scan_input_axes=[0, 1], scan_input_directions=[1, 0],
                                     scan_output_axes=[1, 0], scan_output_directions=[0, 1])],
                   [_vi("s0", F, [3]), _vi("xa", F, [4, 3]), _vi("xb", F, [3, 4])],
                   [_vi("s", F, [3]), _vi("ya", F, [3, 4]), _vi("yb", F, [4, 3])])
    rng = np.random.default_rng(4)
    feed = {"s0": rng.normal(size=3).astype(np.float32), "xa": rng.normal(size=(4, 3)).astype(np.float32),
            "xb": rng.normal(size=(3, 4)).astype(np.float32)}
    _check_import(model, feed, "scan")


def test_import_nested_scan_in_loop_with_outer_capture():
    F, I, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
    inner = helper.make_graph(
        [helper.make_node("Mul", ["e", "w"], ["ew"]), helper.make_node("Add", ["acc_in", "ew"], ["acc_out"])],
        "inner", [_vi("acc_in", F, [2]), _vi("e", F, [2])], [_vi("acc_out", F, [2])])
    body = helper.make_graph(
        [helper.make_node("Scan", ["v_in", "xs"], ["v_out"], body=inner, num_scan_inputs=1),
         helper.make_node("Identity", ["c_in"], ["c_out"])],
        "body", [_vi("i", I, []), _vi("c_in", B, []), _vi("v_in", F, [2])],
        [_vi("c_out", B, []), _vi("v_out", F, [2])])
    model = _model([helper.make_node("Loop", ["M", "", "v0"], ["v"], body=body)],
                   [_vi("M", I, []), _vi("v0", F, [2]), _vi("xs", F, [3, 2]), _vi("w", F, [2])],
                   [_vi("v", F, [2])])
    rng = np.random.default_rng(5)
    for m in (0, 4):
        feed = {"M": np.int64(m), "v0": rng.normal(size=2).astype(np.float32),
                "xs": rng.normal(size=(3, 2)).astype(np.float32), "w": rng.normal(size=2).astype(np.float32)}
        g = _check_import(model, feed, "while_loop")
    assert sum(n.op == "scan" for n in g.walk()) == 1


def test_import_refuses_a_branch_type_mismatch_with_a_typed_error():
    F = TensorProto.FLOAT
    then_g = helper.make_graph([helper.make_node("Identity", ["a"], ["t"])], "then", [], [_vi("t", F, [3])])
    else_g = helper.make_graph([helper.make_node("Identity", ["b"], ["e"])], "else", [], [_vi("e", F, [4])])
    model = helper.make_model(helper.make_graph(
        [helper.make_node("If", ["p"], ["y"], then_branch=then_g, else_branch=else_g)], "m",
        [_vi("p", TensorProto.BOOL, []), _vi("a", F, [3]), _vi("b", F, [4])], [_vi("y", F, None)]),
        opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(gf.GraphforgeError):
        from_onnx(model)


# ---- gradient graphs with regions -------------------------------------------------------------------

def test_gradient_graph_with_scan_cond_and_bounded_while_exports_and_runs_in_onnxruntime():
    from graphforge import nn

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Linear(3, 3)

        def forward(self, x):
            def step(h, xt):
                h = gf.tanh(self.w(h) + xt)
                return h, h

            h, ys = gf.scan(step, gf.zeros((3,)), x)
            hb = gf.cond(gf.sum(h) > 0, lambda a: a * 2.0, lambda a: a * a, h)
            y = gf.while_loop(lambda c: gf.sum(c * c) < 10.0, lambda c: c * 1.5 + 0.1, hb, max_iterations=5)
            return gf.sum(ys * ys) + gf.sum(y)

    tg = gf.grad(gf.trace(Recurrent(), gf.TensorSpec((5, 3), name="x")))
    proto = gf.to_onnx(tg)
    from graphforge.runtimes.onnx_import.importer import all_nodes

    kinds = [n.op_type for n in all_nodes(proto.graph)]
    # the VJP of the scan is a second Scan running the other way
    scans = [n for n in all_nodes(proto.graph) if n.op_type == "Scan"]
    assert any(any(a.name == "scan_input_directions" for a in n.attribute) for n in scans), kinds
    assert {"If", "Scan"} <= set(kinds)
    x = np.random.default_rng(6).normal(size=(5, 3)).astype(np.float32)
    _assert_all_equal(_run_all(tg, {"x": x}), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_scan_over_symbolic_dims_and_half_types_at_every_opset(dtype):
    from graphforge.runtimes.onnx import max_opset

    def f(x):
        def step(h, xt):
            h = gf.tanh(h * 0.5 + xt)
            return h, gf.reshape(h, (-1,))  # a run-time shape (2*batch) computed inside the body

        return gf.scan(step, gf.zeros((x.shape[1], 2), dtype), x)

    g = gf.trace(f, gf.TensorSpec(("seq", "batch", 2), dtype, name="x"))
    x = np.random.default_rng(7).normal(size=(4, 3, 2)).astype(dtype)
    want = gf.run(g, {"x": x}, backend="reference")
    import onnxruntime as ort

    for opset in sorted({17, max_opset()}):
        proto = gf.to_onnx(g, opset=opset)
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        for gv, wv in zip(sess.run(None, {"x": x}), want):
            assert gv.dtype == wv.dtype and gv.shape == wv.shape
            np.testing.assert_allclose(gv.astype(np.float32), wv.astype(np.float32), rtol=1e-3, atol=1e-3)


def test_example_programs_each_export_to_one_onnx_file_that_runs_and_imports(tmp_path):
    """examples/control_flow.py (float64, symbolic sizes): file → onnxruntime and → from_onnx → JAX."""
    import importlib.util
    import os

    import onnxruntime as ort

    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "control_flow.py")
    spec = importlib.util.spec_from_file_location("control_flow_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    for name, g, inputs, want in example.programs():
        file = tmp_path / f"{name}.onnx"
        gf.save_onnx(g, file)
        sess = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        feed = {i.name: np.asarray(a) for i, a in zip(sess.get_inputs(), inputs)}
        np.testing.assert_allclose(sess.run(None, feed)[0], want[0], rtol=1e-9, err_msg=name)
        back = from_onnx(str(file))
        assert any(n.regions for n in back.nodes), name
        np.testing.assert_allclose(gf.run(back, feed, backend="jax")[0], want[0], rtol=1e-9, err_msg=name)


def test_an_op_without_lowering_inside_a_body_is_reported_with_its_line(monkeypatch):
    from graphforge.runtimes import onnx as gf_onnx

    monkeypatch.delitem(gf_onnx.LOWERINGS, "sin")

    def f(x):
        def step(c, xt):
            c = c + gf.sin(xt)  # the line the error must name
            return c, c

        return gf.scan(step, gf.zeros((2,)), x)

    g = gf.trace(f, gf.TensorSpec((3, 2), name="x"))
    with pytest.raises(gf.UnsupportedOpError) as info:
        gf.to_onnx(g)
    (line,) = {n.loc for n in g.walk() if n.op == "sin"}
    assert line in str(info.value) and "sin" in str(info.value)


def test_optimised_graph_with_hoisted_invariants_exports_and_matches():
    def f(x, w):
        def step(h, xt):
            h = gf.tanh(gf.matmul(w * 2.0, h) + xt)  # w * 2.0 is loop-invariant: hoisted out
            return h, h

        return gf.scan(step, gf.zeros((3,)), x)

    g = gf.trace(f, gf.TensorSpec((4, 3), name="x"), gf.TensorSpec((3, 3), name="w"))
    opt = gf.optimize(g, verify=True)
    rng = np.random.default_rng(8)
    feed = {"x": rng.normal(size=(4, 3)).astype(np.float32), "w": rng.normal(size=(3, 3)).astype(np.float32)}
    want = gf.run(g, feed, backend="reference")
    for gv, wv in zip(gf.run(opt, feed, backend="onnxruntime"), want):
        np.testing.assert_allclose(gv, wv, rtol=1e-5, atol=1e-6)


def test_import_loop_with_int64_max_trip_count_and_a_data_dependent_condition():
    """What exporters write for `while`: M = INT64_MAX, the condition decides. Not a 2**63-step bound."""
    F, I, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
    body = helper.make_graph(
        [helper.make_node("Add", ["x_in", "one"], ["x_out"]), helper.make_node("Less", ["x_out", "limit"], ["c_out"])],
        "body", [_vi("i", I, []), _vi("c_in", B, []), _vi("x_in", F, [])], [_vi("c_out", B, []), _vi("x_out", F, [])])
    inits = [helper.make_tensor("M", I, [], [2 ** 63 - 1]), helper.make_tensor("one", F, [], [1.0]),
             helper.make_tensor("go", TensorProto.BOOL, [], [True])]
    model = _model([helper.make_node("Loop", ["M", "go", "x0"], ["x"], body=body)],
                   [_vi("x0", F, []), _vi("limit", F, [])], [_vi("x", F, [])], inits=inits)
    g = _check_import(model, {"x0": np.float32(0.5), "limit": np.float32(7.0)}, "while_loop")
    (loop,) = [n for n in g.walk() if n.op == "while_loop"]
    assert loop.attrs["max_iterations"] == -1


def test_cond_and_while_over_a_symbolic_batch():
    def f(x):
        y = gf.cond(gf.sum(x) > 0, lambda v: v[:, :2] * 2.0, lambda v: v[:, 1:] - 1.0, x)
        return gf.while_loop(lambda c: gf.sum(c * c) < 100.0,
                             lambda c: gf.reshape(c * 1.5 + 0.1, (-1, 2)), y, max_iterations=30)

    rng = np.random.default_rng(9)
    feeds = [{"x": rng.normal(size=(n, 3)).astype(np.float32)} for n in (1, 4)]
    _check_everywhere(f, [gf.TensorSpec(("batch", 3), name="x")], feeds, {"If", "Loop"}, rtol=1e-5, atol=1e-5)


def test_import_opset8_batched_scan_is_a_scan_over_the_batch_of_scans():
    F = TensorProto.FLOAT
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "x"], ["s1"]), helper.make_node("Mul", ["s1", "z"], ["s_out"]),
         helper.make_node("Mul", ["s_out", "w"], ["y"])],
        "body", [_vi("s_in", F, [2]), _vi("x", F, [2]), _vi("z", F, [2])], [_vi("s_out", F, [2]), _vi("y", F, [2])])
    # directions reverse the first sequence only; outputs stack in step order (Scan-8)
    model = _model([helper.make_node("Scan", ["", "s0", "xs", "zs"], ["s", "ys"], body=body, num_scan_inputs=2,
                                     directions=[1, 0])],
                   [_vi("s0", F, [3, 2]), _vi("xs", F, [3, 4, 2]), _vi("zs", F, [3, 4, 2]), _vi("w", F, [2])],
                   [_vi("s", F, [3, 2]), _vi("ys", F, [3, 4, 2])], opset=8)
    rng = np.random.default_rng(10)
    feed = {"s0": rng.normal(size=(3, 2)).astype(np.float32), "xs": rng.normal(size=(3, 4, 2)).astype(np.float32),
            "zs": rng.uniform(0.5, 1.5, size=(3, 4, 2)).astype(np.float32), "w": rng.normal(size=2).astype(np.float32)}
    g = _check_import(model, feed, "scan")
    assert sum(n.op == "scan" for n in g.walk()) == 2


def test_a_graph_output_read_inside_bodies_keeps_its_name_there():
    """y is both a graph output (renamed 'output' in ONNX) and read by name inside Scan and If bodies."""
    def f(x):
        y = x[0] * 2.0
        c, ys = gf.scan(lambda c, xt: (c + y * xt, c), gf.zeros((3,)), x)
        return y, ys, gf.cond(gf.sum(y) > 0, lambda a: a + y, lambda a: a - y, c)

    feeds = [{"x": np.random.default_rng(11).normal(size=(4, 3)).astype(np.float32)}]
    _, proto = _check_everywhere(f, [gf.TensorSpec((4, 3), name="x")], feeds, {"Scan", "If"})
    producer = next(n for n in proto.graph.node if "output" in n.output)
    assert producer.op_type == "Mul"  # the Mul writes the graph output itself, the bodies read that name
