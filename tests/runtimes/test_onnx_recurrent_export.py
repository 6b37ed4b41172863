"""ONNX export of ``nn.LSTM``/``nn.GRU``/``nn.RNN`` as the native ``LSTM``/``GRU``/``RNN`` ops
(``runtimes/onnx/recurrent.py``): onnxruntime matches the reference interpreter, the file imports
back to the same outputs, ``native_ops=False`` keeps the ``Scan``, and what does not fit the
tagged interface (float64) falls back to the ``Scan``."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn

pytest.importorskip("onnxruntime")

CASES = {
    "lstm-2l-bi-batch_first": (nn.LSTM, dict(num_layers=2, bidirectional=True, batch_first=True), False),
    "gru-bi-lengths": (nn.GRU, dict(bidirectional=True), True),
    "rnn_relu": (nn.RNN, dict(nonlinearity="relu"), False),
    "rnn_tanh-no-bias-lengths": (nn.RNN, dict(bias=False), True),
    "lstm-lengths": (nn.LSTM, dict(), True),
}
NATIVE = {nn.LSTM: "LSTM", nn.GRU: "GRU", nn.RNN: "RNN"}


def _graph(cls, kw, lengths, dtype="float32"):
    m = cls(5, 6, dtype=dtype, **kw)

    def f(x, *ls):
        out, st = m(x, lengths=ls[0] if ls else None)
        return (out, *st) if isinstance(st, tuple) else (out, st)
    spec = gf.TensorSpec(("batch", "seq", 5) if kw.get("batch_first") else ("seq", "batch", 5), dtype)
    specs = [spec] + ([gf.TensorSpec(("batch",), "int64")] if lengths else [])
    return gf.trace(f, *specs, seed=1, training=False)


def _inputs(kw, lengths, seq=6, dtype=np.float32):
    shape = (3, seq, 5) if kw.get("batch_first") else (seq, 3, 5)
    feeds = [np.random.default_rng(0).standard_normal(shape).astype(dtype)]
    if lengths:
        feeds.append(np.array([seq, 2, seq - 1], dtype=np.int64))
    return feeds


def _op_types(proto):
    return {n.op_type for n in proto.graph.node}


@pytest.mark.parametrize("case", list(CASES))
def test_native_export_matches_reference_and_round_trips(case):
    cls, kw, lengths = CASES[case]
    g = _graph(cls, kw, lengths)
    proto = gf.to_onnx(g, native_ops={NATIVE[cls]})
    ops = _op_types(proto)
    assert NATIVE[cls] in ops and "Scan" not in ops, ops
    back = gf.from_onnx(proto)
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    for seq in (6, 4):  # the traced length and another one: one file serves both
        feeds = _inputs(kw, lengths, seq)
        want = gf.run(g, feeds, backend="reference")
        got = sess.run(None, dict(zip(names, feeds)))
        again = gf.run(back, feeds, backend="reference")
        assert len(got) == len(want) == len(again)
        for w, a, b in zip(want, got, again):
            np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(b, w, rtol=1e-5, atol=1e-6)


def test_default_choice_per_case():
    """LSTM: native; GRU/RNN: native only for the small static batches where they were measured faster."""
    def ops_of(cls, batch, **kw):
        m = cls(5, 6, **kw)
        return _op_types(gf.to_onnx(gf.trace(lambda x: m(x)[0], gf.TensorSpec(("seq", batch, 5)), training=False)))
    assert "LSTM" in ops_of(nn.LSTM, "batch") and "LSTM" in ops_of(nn.LSTM, 32)
    assert "Scan" in ops_of(nn.GRU, "batch") and "Scan" in ops_of(nn.GRU, 32) and "GRU" in ops_of(nn.GRU, 4)
    assert "Scan" in ops_of(nn.RNN, 8) and "RNN" in ops_of(nn.RNN, 1)


def test_native_ops_false_keeps_the_scan_and_the_same_outputs():
    cls, kw, lengths = CASES["lstm-lengths"]
    g = _graph(cls, kw, lengths)
    scan_proto, native_proto = gf.to_onnx(g, native_ops=False), gf.to_onnx(g, native_ops={"LSTM"})
    assert "Scan" in _op_types(scan_proto) and "LSTM" not in _op_types(scan_proto)
    assert "LSTM" in _op_types(native_proto) and "Scan" not in _op_types(native_proto)
    import onnxruntime as ort

    feeds = _inputs(kw, lengths)
    outs = []
    for proto in (scan_proto, native_proto):
        s = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        outs.append(s.run(None, dict(zip([i.name for i in s.get_inputs()], feeds))))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_optimized_graph_still_exports_natively_and_drops_the_unused_weights():
    cls, kw, lengths = CASES["lstm-2l-bi-batch_first"]
    g = gf.optimize(_graph(cls, kw, lengths))
    proto = gf.to_onnx(g)
    lstms = [n for n in proto.graph.node if n.op_type == "LSTM"]
    assert len(lstms) == 2   # one bidirectional node per layer
    assert all(a.s == b"bidirectional" for n in lstms for a in n.attribute if a.name == "direction")
    # the PyTorch-layout weights are stored once, re-packed; the originals are not kept beside them
    assert not any(t.name.startswith("weight_") for t in proto.graph.initializer)
    feeds = _inputs(kw, lengths)
    for a, b in zip(gf.run(g, feeds, backend="onnxruntime"), gf.run(g, feeds, backend="reference")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_float64_falls_back_to_the_scan():
    cls, kw, lengths = CASES["rnn_relu"]
    g = _graph(cls, kw, lengths, dtype="float64")
    ops = _op_types(gf.to_onnx(g, native_ops=True))
    assert "Scan" in ops and "RNN" not in ops
    feeds = _inputs(kw, lengths, dtype=np.float64)
    for a, b in zip(gf.run(g, feeds, backend="onnxruntime"), gf.run(g, feeds, backend="reference")):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_params_as_inputs_repacks_with_gather():
    cls, kw, lengths = CASES["gru-bi-lengths"]
    g = _graph(cls, kw, lengths)
    proto = gf.to_onnx(g, params_as_inputs=True, native_ops=True)
    assert "GRU" in _op_types(proto) and "Gather" in _op_types(proto)
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = _inputs(kw, lengths)
    names = [i.name for i in sess.get_inputs()]
    named = dict(zip(names, feeds), **{n: g.params[n] for n in names[len(feeds):]})
    for a, b in zip(sess.run(None, named), gf.run(g, feeds, backend="reference")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bidirectional_with_initial_states_is_one_node_per_layer():
    m = nn.LSTM(5, 6, num_layers=2, bidirectional=True)

    def f(x, h0, c0):
        out, (h, c) = m(x, (h0, c0))
        return out, h, c
    g = gf.trace(f, gf.TensorSpec(("seq", "batch", 5)), gf.TensorSpec((4, "batch", 6)), gf.TensorSpec((4, "batch", 6)),
                 seed=2, training=False)
    proto = gf.to_onnx(g)
    lstms = [n for n in proto.graph.node if n.op_type == "LSTM"]
    assert len(lstms) == 2 and all(len(n.input) == 7 for n in lstms)   # initial_h and initial_c fed
    rng = np.random.default_rng(3)
    feeds = [rng.standard_normal(s).astype(np.float32) for s in ((7, 3, 5), (4, 3, 6), (4, 3, 6))]
    for a, b in zip(gf.run(g, feeds, backend="onnxruntime"), gf.run(g, feeds, backend="reference")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_imported_recurrent_ops_export_natively_again(kind):
    """torch.onnx's LSTM/GRU nodes import onto tagged scans (ONNX gate order) and re-export as the
    native op, still matching PyTorch."""
    import os

    fixtures = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
    g = gf.from_onnx(os.path.join(fixtures, f"seq_torch_{kind}_torchscript.onnx"))
    op = kind.upper()
    proto = gf.to_onnx(g, native_ops={op})
    assert op in _op_types(proto) and "Scan" not in _op_types(proto)
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    with np.load(os.path.join(fixtures, "seq_torch_onnx.npz")) as z:
        for t in (5, 9):
            got = sess.run(None, {sess.get_inputs()[0].name: z[f"{kind}/{t}/x"]})
            for a, name in zip(got, ["out", "h_n", "c_n"]):
                np.testing.assert_allclose(a, z[f"{kind}/{t}/{name}"], rtol=1e-4, atol=1e-5, err_msg=f"T={t} {name}")
