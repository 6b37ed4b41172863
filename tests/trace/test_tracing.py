"""Tracing: the symbolic Tensor's operators, methods and indexing (checked against NumPy), dtype
promotion, symbolic-dim misuse and provenance."""
from __future__ import annotations

import math

import numpy as np
import pytest

import graphforge as gf
from graphforge.trace.tensor import SymDim
from gf_testutil import zip_outputs

X = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) / 10 - 5


def run1(fn, *arrays, specs=None):
    specs = specs or [gf.TensorSpec(a.shape, gf.dtypes.from_numpy_dtype(a.dtype)) for a in arrays]
    g = gf.trace(fn, *specs)
    g.verify()
    outs = gf.run(g, list(arrays))
    return outs[0] if len(outs) == 1 else outs


INDEXES = {
    "x[:, 0]": lambda t: t[:, 0],
    "x[..., 1:3]": lambda t: t[..., 1:3],
    "x[None]": lambda t: t[None],
    "x[::2]": lambda t: t[::2],
    "x[::-1]": lambda t: t[::-1],
    "x[-1]": lambda t: t[-1],
    "x[1:-1, ::-2]": lambda t: t[1:-1, ::-2],
    "x[3:0:-1]": lambda t: t[3:0:-1],
    "x[-1::-2, 2]": lambda t: t[-1::-2, 2],
    "x[:, None, 1]": lambda t: t[:, None, 1],
    "x[..., None]": lambda t: t[..., None],
    "x[0, ..., -1]": lambda t: t[0, ..., -1],
    "x[2, 3, 4]": lambda t: t[2, 3, 4],
    "x[:, -2:]": lambda t: t[:, -2:],
    "x[10:]": lambda t: t[10:],
    "x[:, :, -100:100:3]": lambda t: t[:, :, -100:100:3],
    "x[:, 1:4:-1]": lambda t: t[:, 1:4:-1],
    "x[[0, 2]]": lambda t: t[[0, 2]],
    "x[:, [1, 0, 4]]": lambda t: t[:, [1, 0, 4]],
    "x[[-1, 0], :, 0]": lambda t: t[[-1, 0], :, 0],
    "x[0, :, [0, 1]]": lambda t: t[0, :, [0, 1]],
    "x[:, [1, 0], 0]": lambda t: t[:, [1, 0], 0],
    "x[2d, 1]": lambda t: t[np.array([[0, 1], [2, 3]]), 1],
    "x[1, 2d]": lambda t: t[1, np.array([[0, 1], [2, 3]])],
    "x[None, [3, 1], None, ::2, 5]": lambda t: t[None, [3, 1], None, ::2, 5],
    "x[[1, 2], None, 0]": lambda t: t[[1, 2], None, 0],
}


@pytest.mark.parametrize("name", list(INDEXES))
def test_indexing_matches_numpy(name):
    fn = INDEXES[name]
    want = fn(X)
    got = run1(fn, X)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_indexing_with_a_tensor_index():
    idx = np.array([2, 0, 2])
    got = run1(lambda t, i: t[:, i], X, idx)
    np.testing.assert_array_equal(got, X[:, idx])


def test_indexing_a_symbolic_batch():
    g = gf.trace(lambda t: (t[:, 0], t[..., ::-1], t[:, None, 1:3]), gf.TensorSpec(("batch", 5, 6), "float32"))
    assert [str(o.type) for o in g.outputs] == ["f32[batch,6]", "f32[batch,5,6]", "f32[batch,1,2,6]"]
    for got, want in zip_outputs(gf.run(g, [X]), (X[:, 0], X[..., ::-1], X[:, None, 1:3])):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fn,match", [
    (lambda t: t[5], "out of bounds"),
    (lambda t: t[..., ...], "single ellipsis"),
    (lambda t: t[0, 0, 0, 0], "too many indices"),
    (lambda t: t[[0], [1]], "more than one integer array"),
    (lambda t: t[True], "boolean index"),
    (lambda t: t[::0], "step"),
    (lambda t: t["a"], "unsupported index"),
])
def test_bad_indexes_are_shape_errors(fn, match):
    with pytest.raises(gf.ShapeError, match=match):
        gf.trace(fn, gf.TensorSpec((4, 5, 6), "float32"))


def test_operators_and_methods_match_numpy():
    a = np.linspace(0.5, 2.0, 12, dtype=np.float32).reshape(3, 4)
    b = np.linspace(-1.0, 1.0, 4, dtype=np.float32)

    def f(x, y):
        return (x + y, x - y, y - x, x * 2, 2 / x, x / y, x ** 2, 2 ** y, -x, abs(y), x @ y, x.T, x.mT,
                x.transpose(0, 1), x.permute(1, 0), x.reshape(4, 3), x.view(-1), x.sum(1), x.mean(),
                x.max(-1), x.min(0), x.argmax(-1), x.exp(), x.log(), x.sqrt(), x.relu(), x.tanh(),
                x.clamp(min=1.0), x.unsqueeze(0), x.flatten(0), x.expand(2, 3, 4), x.where(x > 1, 0.0),
                x.softmax(-1), x.var(0), x.square(), x.float(), x.long(), (x > 1) & (x < 1.5), (x > 1) | (x < 0.6),
                (x > 1) ^ (x > 1.5), ~(x > 1), x == x, x != 1.0, x >= 1.0, x <= 1.0)

    got = run1(f, a, b)
    e = np.exp(a - a.max(-1, keepdims=True))
    want = (a + b, a - b, b - a, a * 2, 2 / a, a / b, a ** 2, 2 ** b, -a, abs(b), a @ b, a.T, a.T,
            a.T, a.T, a.reshape(4, 3), a.reshape(-1), a.sum(1), a.mean(), a.max(-1), a.min(0), a.argmax(-1),
            np.exp(a), np.log(a), np.sqrt(a), np.maximum(a, 0), np.tanh(a), np.maximum(a, 1.0), a[None],
            a.reshape(-1), np.broadcast_to(a, (2, 3, 4)), np.where(a > 1, a, 0.0), e / e.sum(-1, keepdims=True),
            a.var(0), a * a, a, a.astype(np.int64), (a > 1) & (a < 1.5), (a > 1) | (a < 0.6),
            (a > 1) ^ (a > 1.5), ~(a > 1), a == a, a != 1.0, a >= 1.0, a <= 1.0)
    for i, (g, w) in enumerate(zip_outputs(got, want)):
        w = np.asarray(w)
        assert g.shape == w.shape, i
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=str(i))


def test_transpose_of_two_axes_swaps_them_like_pytorch():
    a = X[0]
    np.testing.assert_array_equal(run1(lambda t: t.transpose(0, 1), a), a.T)
    np.testing.assert_array_equal(run1(lambda t: t.transpose(1, 2), X), X.transpose(0, 2, 1))
    np.testing.assert_array_equal(run1(lambda t: t.transpose(2, 0, 1), X), X.transpose(2, 0, 1))


@pytest.mark.parametrize("fn,dtypes,want", [
    (lambda x: x + 1.5, ["int32"], "float32"),
    (lambda x: 1.5 * x, ["int64"], "float32"),
    (lambda x: x + np.float32(0.5), ["int32"], "float32"),
    (lambda x: x + 2, ["int32"], "int32"),
    (lambda x: x + 2, ["float16"], "float16"),
    (lambda x: x * 0.5, ["bfloat16"], "bfloat16"),
    (lambda x: x + 1, ["bool"], "int64"),
    (lambda x, y: x + y, ["float16", "float32"], "float32"),
    (lambda x, y: x + y, ["float16", "bfloat16"], "float32"),
    (lambda x, y: x * y, ["int32", "float64"], "float64"),
    (lambda x, y: x - y, ["int8", "int64"], "int64"),
    (lambda x, y: x @ y, ["float32", "float64"], "float64"),
    (lambda x, y: gf.where(x > 0, x, y), ["float32", "float16"], "float32"),
    (lambda x: gf.where(x > 0, x, 0.5), ["int32"], "float32"),
    (lambda x: gf.where(x > 0, 1, x), ["float16"], "float16"),
    (lambda x: x.where(x > 0, 2), ["int64"], "int64"),
])
def test_dtype_promotion(fn, dtypes, want):
    specs = [gf.TensorSpec((3, 3), d) for d in dtypes]
    g = gf.trace(fn, *specs)
    assert g.outputs[0].type.dtype == want
    arrays = [np.ones((3, 3), dtype=gf.dtypes.to_numpy_dtype(d)) for d in dtypes]
    assert gf.run(g, arrays)[0].dtype == gf.dtypes.to_numpy_dtype(want)


def test_int_plus_float_scalar_computes_in_float():
    out = run1(lambda x: x + 0.5, np.array([1, 2], np.int32))
    np.testing.assert_array_equal(out, np.array([1.5, 2.5], np.float32))


# ---- symbolic dims --------------------------------------------------------------------------

def _trace_batch(fn):
    return gf.trace(fn, gf.TensorSpec(("batch", 4), "float32"))


@pytest.mark.parametrize("misuse", [
    lambda x: x * 2 if x.shape[0] > 1 else x,
    lambda x: x * 2 if x.shape[0] else x,
    lambda x: [x for _ in range(x.shape[0])][0],
    lambda x: x.reshape(int(x.shape[0]), 4),
    lambda x: x * math.sqrt(x.shape[0]),
    lambda x: x * float(x.shape[0]),
    lambda x: x * max(x.shape[0], 2),
    lambda x: x * len(x),
    lambda x: x * (x.shape[0] / 2),
])
def test_symbolic_dim_misuse_is_a_trace_error(misuse):
    with pytest.raises(gf.TraceError):
        _trace_batch(misuse)


@pytest.mark.parametrize("mismatch", [
    lambda x: x.reshape(x.shape[0] + 1, 4),
    lambda x: x.reshape(x.shape[0] - 1, 4),
])
def test_symbolic_dim_arithmetic_that_does_not_fit_is_a_shape_error(mismatch):
    with pytest.raises(gf.ShapeError, match="cannot reshape"):
        _trace_batch(mismatch)


def test_symbolic_dims_in_shapes_work():
    g = _trace_batch(lambda x: (x.reshape(x.shape[0] * 2, 2), x.reshape(2 * x.shape[0], -1), x.expand(3, *x.shape)))
    assert [str(o.type) for o in g.outputs] == ["f32[2*batch,2]", "f32[2*batch,2]", "f32[3,batch,4]"]
    x = np.zeros((5, 4), np.float32)
    assert [o.shape for o in gf.run(g, [x])] == [(10, 2), (10, 2), (3, 5, 4)]
    dim = g.inputs[0].type.shape[0]
    assert isinstance(SymDim(dim) * 4, SymDim) and SymDim(dim) * 4 == "4*batch"
    assert f"{SymDim('batch')}" == "batch" and "%s" % SymDim("batch") == "batch"


def test_tensor_as_bool_or_array_is_a_trace_error():
    with pytest.raises(gf.TraceError, match="Python bool"):
        _trace_batch(lambda x: x if x.sum() > 0 else -x)
    with pytest.raises(gf.TraceError, match="NumPy array"):
        _trace_batch(lambda x: np.asarray(x))
    with pytest.raises(gf.TraceError, match="iterating"):
        _trace_batch(lambda x: list(x))


def test_ops_outside_a_trace_are_a_trace_error():
    with pytest.raises(gf.TraceError, match="gf.trace"):
        gf.relu(np.ones(3))
    with pytest.raises(gf.TraceError, match="gf.trace"):
        gf.constant(1.0)


def test_trace_errors_for_bad_specs_and_outputs():
    with pytest.raises(gf.TraceError, match="at least one input spec"):
        gf.trace(lambda x: x)
    with pytest.raises(gf.TraceError, match="input spec"):
        gf.trace(lambda x: x, "float32")
    with pytest.raises(gf.TraceError, match="not a Tensor"):
        gf.trace(lambda x: (x, 3), gf.TensorSpec((2,), "float32"))
    with pytest.raises(gf.TraceError, match="returned a"):
        gf.trace(lambda x: None, gf.TensorSpec((2,), "float32"))
    with pytest.raises(gf.TraceError, match="input name"):
        gf.trace(lambda x, y: x + y, gf.TensorSpec((2,), name="a"), gf.TensorSpec((2,), name="a"))
    with pytest.raises(gf.TraceError, match="invalid value name"):
        gf.trace(lambda x: x, gf.TensorSpec((2,), name="an input"))


def test_input_names_come_from_the_signature_or_the_spec():
    g = gf.trace(lambda image, *rest: image + rest[0], gf.TensorSpec((2,)), gf.TensorSpec((2,)))
    assert [v.name for v in g.inputs] == ["image", "x1"]
    g = gf.trace(lambda a: a, gf.TensorSpec((2,), name="pixels"))
    assert [v.name for v in g.inputs] == ["pixels"]
    g = gf.trace(lambda a, b: a * 1.0, np.zeros((2, 3), np.float64), ((4,), "int32"))
    assert str(g.inputs[0].type) == "f64[2,3]"


def test_shape_error_names_the_op_the_shapes_and_the_line():
    with pytest.raises(gf.ShapeError) as err:
        gf.trace(lambda a, b: a @ b, gf.TensorSpec(("n", 3)), gf.TensorSpec((4, 2)))  # this line
    msg = str(err.value)
    assert "matmul" in msg and "f32[n,3]" in msg and "f32[4,2]" in msg
    assert f"test_tracing.py:{test_shape_error_names_the_op_the_shapes_and_the_line.__code__.co_firstlineno + 2}" in msg


def test_nodes_carry_the_users_source_line():
    def f(x):
        y = gf.exp(x)
        return y * 2.0

    g = gf.trace(f, gf.TensorSpec((2,)))
    first = f.__code__.co_firstlineno
    assert g.nodes[0].loc == f"test_tracing.py:{first + 1}"
    assert g.nodes[-1].loc == f"test_tracing.py:{first + 2}"


def test_spec_count_must_match_the_signature():
    with pytest.raises(gf.TraceError, match="with 2 input"):
        gf.trace(lambda a: a, gf.TensorSpec((2,)), gf.TensorSpec((2,)))


def test_symbolic_dim_times_a_float_is_a_trace_error():
    with pytest.raises(gf.TraceError, match="computes with ints and dims"):
        _trace_batch(lambda x: x.reshape(x.shape[0] * 0.5, 8))
    g = _trace_batch(lambda x: x.reshape(np.int64(2) * x.shape[0], 2))
    assert str(g.outputs[0].type) == "f32[2*batch,2]"


def test_numpy_operands_on_the_left_defer_to_the_tensor():
    x = np.arange(3, dtype=np.float32)
    outs = run1(lambda t: (np.float32(2) * t, np.ones(3, np.float32) + t, np.float64(0.5) - t, 2 ** t), x)
    for got, want in zip_outputs(outs, (2 * x, 1 + x, 0.5 - x, 2.0 ** x)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want)


def test_len_and_size():
    g = gf.trace(lambda t: t * float(len(t)) + t.size(1), gf.TensorSpec((3, 4)))
    np.testing.assert_array_equal(gf.run(g, [np.zeros((3, 4), np.float32)])[0], np.full((3, 4), 4.0, np.float32))
    with pytest.raises(gf.TraceError, match="0-d"):
        gf.trace(lambda t: len(t), gf.TensorSpec(()))
