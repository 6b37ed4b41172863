"""Shapes as run-time values: a model sized by ``x.shape[1]`` traces once and runs at any length on
every back end; the constraints it implies are checked when inputs are bound."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.guards import guards

BACKENDS = ("reference", "jax", "onnxruntime")
MAX_LEN = 64


class PositionalCausal(nn.Module):
    """Learned positions sliced by the sequence length and a causal (seq, seq) mask."""

    def __init__(self, dim: int = 8, max_len: int = MAX_LEN):
        super().__init__()
        self.pos = nn.Parameter((max_len, dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):                                  # x: (batch, seq, dim)
        n = x.shape[1]
        h = x + self.pos[:n]                               # POS_LINE: needs seq <= max_len
        scores = h @ h.transpose(1, 2) / 8.0               # (batch, seq, seq)
        mask = gf.tril(gf.ones((n, n)))
        scores = gf.where(mask > 0, scores, -1e9)
        out = scores.softmax(-1) @ self.proj(h)
        last = out[:, n - 1]                               # the last position, a run-time index
        return out, last


POS_LINE = next(i for i, line in enumerate(open(__file__), 1) if "# POS_LINE" in line and "self.pos[:n]" in line)


@pytest.fixture(scope="module")
def graph():
    return gf.trace(PositionalCausal(), gf.TensorSpec(("batch", "seq", 8), "float32"), seed=0)


def test_types_print_as_expressions(graph):
    text = str(graph)
    assert "f32[seq,8] = slice(%pos)" in text and "ends=[seq]" in text
    assert "f32[batch,seq,seq]" in text and "f32[batch,8]" in text
    assert str(gf.parse(text, params=graph.params)) == text
    summary = gf.summary(graph, print_fn=None)
    assert "f32[batch,8]" in summary


def test_exports_once_and_runs_at_any_length_on_every_back_end(graph):
    proto = gf.to_onnx(graph)  # one model for every length (dims are dim_params, sizes computed at run time)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "seq", 8]
    from graphforge.runtimes.onnx import OrtSession

    session = OrtSession(proto)  # the one exported model, straight into onnxruntime
    rng = np.random.default_rng(0)
    for seq in (3, 17, 64):
        x = rng.standard_normal((2, seq, 8)).astype(np.float32)
        ref = gf.run(graph, [x])
        assert ref[0].shape == (2, seq, 8) and ref[1].shape == (2, 8)
        np.testing.assert_allclose(ref[1], ref[0][:, seq - 1])
        for got in (session.run({"x": x}), gf.run(graph, [x], backend="jax"),
                    gf.run(graph, [x], backend="onnxruntime")):
            for a, b in zip(got, ref):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_causal_mask_really_masks(graph):
    x = np.random.default_rng(1).standard_normal((1, 5, 8)).astype(np.float32)
    y = x.copy()
    y[:, 3:] += 1.0  # changing later positions must not change earlier outputs
    a, b = gf.run(graph, [x])[0], gf.run(graph, [y])[0]
    np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[:, 3:], b[:, 3:])


def test_a_too_long_input_breaks_the_recorded_constraint(graph):
    assert [str(g.requirement) for g in guards(graph)] == ["seq <= 64", "1 <= seq"]  # (out[:, n - 1])
    x = np.zeros((1, MAX_LEN + 1, 8), np.float32)
    for backend in BACKENDS:
        with pytest.raises(gf.InputError) as err:
            gf.run(graph, [x], backend=backend)
        text = str(err.value)
        assert "seq <= 64" in text and "seq = 65" in text and f"test_symbolic_shapes.py:{POS_LINE}" in text
        assert "input 'x' axis 1" in text


def test_guards_survive_the_text_format_and_passes(graph):
    again = gf.parse(str(graph), params=graph.params)
    assert [str(g.requirement) for g in guards(again)] == ["seq <= 64", "1 <= seq"]
    with pytest.raises(gf.InputError, match="seq <= 64"):
        gf.run(gf.optimize(graph), [np.zeros((1, 70, 8), np.float32)])


def test_a_reshape_by_heads_records_divisibility():
    def pairs(x):
        return x.reshape(x.shape[0], -1, 2, 8)      # the seq axis taken in 2s: needs an even seq

    g = gf.trace(pairs, gf.TensorSpec(("batch", "seq", 8), "float32"))
    assert str(g.outputs[0].type) == "f32[batch,floor(seq/2),2,8]"
    assert [str(r.requirement) for r in guards(g)] == ["seq % 2 == 0"]
    x = np.arange(2 * 6 * 8, dtype=np.float32).reshape(2, 6, 8)
    for backend in BACKENDS:
        np.testing.assert_array_equal(gf.run(g, [x], backend=backend)[0], x.reshape(2, 3, 2, 8))
    with pytest.raises(gf.InputError, match="seq % 2 == 0"):
        gf.run(g, [np.zeros((2, 5, 8), np.float32)])


def test_dims_compute_size_and_value_on_every_back_end():
    def fn(x):
        b, n = x.shape
        pieces = (
            x[:, 1:],                                   # seq-1
            gf.concat([x, x[:, : n - 2]], 1),           # 2*seq-2
            gf.arange(n - 1, 2 * n, 2),                 # ceil((seq+1)/2) values
            gf.zeros((b, n // 2)) + x.sum(),            # a run-time shape
            x / n + gf.dim_value(b, "float32"),         # dims as run-time scalars
            gf.pad(x, [0, 0, 1, 2]),                    # seq+3
            x.reshape(-1),                              # batch*seq
        )
        return pieces

    g = gf.trace(fn, gf.TensorSpec(("batch", "seq"), "float32"))
    assert [str(o.type) for o in g.outputs] == [
        "f32[batch,seq-1]", "f32[batch,2*seq-2]", "i64[floor(seq/2)+1]", "f32[batch,floor(seq/2)]",
        "f32[batch,seq]", "f32[batch,seq+3]", "f32[batch*seq]"]
    for shape in ((2, 5), (3, 2), (1, 8)):
        x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        b, n = shape
        want = [x[:, 1:], np.concatenate([x, x[:, : n - 2]], 1), np.arange(n - 1, 2 * n, 2),
                np.zeros((b, n // 2), np.float32) + x.sum(), x / n + b, np.pad(x, [(0, 0), (1, 2)]), x.reshape(-1)]
        for backend in BACKENDS:
            for got, exp in zip(gf.run(g, [x], backend=backend), want):
                np.testing.assert_allclose(got, exp, rtol=1e-6)


def test_a_branch_on_a_dim_names_the_dim_and_the_line():
    def branchy(x):
        if x.shape[1] > 8:                                      # BRANCH_LINE
            return x[:, :8]
        return x

    line = next(i for i, s in enumerate(open(__file__), 1) if "# BRANCH_LINE" in s and "x.shape[1] > 8" in s)
    with pytest.raises(gf.TraceError) as err:
        gf.trace(branchy, gf.TensorSpec(("batch", "seq"), "float32"))
    text = str(err.value)
    assert "'seq > 8'" in text and f"test_symbolic_shapes.py:{line}" in text
    assert "gf.cond" in text and "TensorSpec" in text


def test_comparisons_that_hold_for_every_size_are_answered():
    seen = []

    def fn(x):
        n = x.shape[1]
        seen.append((n - 1 < n, n >= n, n + 1 > n, n * 2 == 2 * n))
        return x

    gf.trace(fn, gf.TensorSpec(("batch", "seq"), "float32"))
    assert seen == [(True, True, True, True)]


def test_gradients_flow_through_a_symbolic_slice():
    model = PositionalCausal(dim=4, max_len=16)

    def loss(x):
        out, _ = model(x)
        return (out * out).mean()

    g = gf.trace(loss, gf.TensorSpec(("batch", "seq", 4), "float32"), seed=0)
    pos = next(n for n in g.params if n.endswith("pos"))
    tg = gf.grad(g, wrt=[pos])
    x = np.random.default_rng(2).standard_normal((2, 5, 4)).astype(np.float32)
    loss_value, grad_pos = gf.run(tg, [x])
    assert grad_pos.shape == (16, 4)
    assert np.all(grad_pos[5:] == 0) and np.any(grad_pos[:5] != 0)  # only the used rows get a gradient
    eps, i = 1e-3, (1, 2)
    bumped = dict(g.params)
    bumped[pos] = g.params[pos].copy()
    bumped[pos][i] += eps
    up = gf.run(g, [x], params=bumped)[0]
    bumped[pos][i] -= 2 * eps
    down = gf.run(g, [x], params=bumped)[0]
    np.testing.assert_allclose(grad_pos[i], (up - down) / (2 * eps), rtol=2e-2, atol=1e-4)


def test_chunks_of_a_symbolic_axis_guard_divisibility():
    g = gf.trace(lambda x: gf.chunk(x, 2, 1), gf.TensorSpec(("batch", "seq"), "float32"))
    assert [str(o.type) for o in g.outputs] == ["f32[batch,floor(seq/2)]"] * 2
    assert [str(r.requirement) for r in guards(g)] == ["seq % 2 == 0"]
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    for backend in BACKENDS:
        a, b = gf.run(g, [x], backend=backend)
        np.testing.assert_array_equal(a, x[:, :3])
        np.testing.assert_array_equal(b, x[:, 3:])
    with pytest.raises(gf.InputError, match="seq % 2 == 0"):
        gf.run(g, [np.zeros((2, 5), np.float32)])
