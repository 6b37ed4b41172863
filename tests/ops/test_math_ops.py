"""The math op family (graphforge/ops/math_ops.py): the semantics its contract fixes, on every back end,
the Tensor operators that reach it, and the typed errors for inputs it refuses."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf

BACKENDS = ["reference", "jax", "onnxruntime"]


def _run_all(fn, *specs_and_arrays):
    specs = specs_and_arrays[::2]
    arrays = list(specs_and_arrays[1::2])
    g = gf.trace(fn, *specs)
    results = [gf.run(g, arrays, backend=b) for b in BACKENDS]
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
    return results[0]


def test_round_is_half_to_even_and_floor_ceil_keep_dtype():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.6, -2.6], np.float32)
    r, f, c = _run_all(lambda x: (gf.round(x), gf.floor(x), gf.ceil(x)), gf.TensorSpec((8,)), x)
    np.testing.assert_array_equal(r, [-2, -2, -0, 0, 2, 2, 3, -3])
    np.testing.assert_array_equal(f, np.floor(x))
    np.testing.assert_array_equal(c, np.ceil(x))
    assert r.dtype == np.float32


@pytest.mark.parametrize("fmod", [False, True])
def test_integer_mod_signs_and_zero_divisor(fmod):
    a = np.array([7, -7, 7, -7, 5, 0], np.int32)
    b = np.array([3, 3, -3, -3, 0, 4], np.int32)
    (out,) = _run_all(lambda a, b: gf.mod(a, b, fmod=fmod), gf.TensorSpec((6,), "int32"), a,
                      gf.TensorSpec((6,), "int32"), b)
    want = [1, -1, 1, -1, 0, 0] if fmod else [1, 2, -2, -1, 0, 0]  # C's fmod vs Python's %; by zero: 0
    np.testing.assert_array_equal(out, want)


def test_float_mod_edge_cases_follow_numpy():
    a = np.array([5.5, -5.5, 1.0, -1.0, np.inf, 3.0], np.float32)
    b = np.array([2.0, 2.0, np.inf, np.inf, 2.0, -0.0], np.float32)
    g = gf.trace(lambda a, b: (gf.mod(a, b), gf.mod(a, b, fmod=True)), gf.TensorSpec((6,)), gf.TensorSpec((6,)))
    with np.errstate(all="ignore"):
        want = [np.mod(a, b), np.fmod(a, b)]
    for backend in BACKENDS:
        for got, w in zip(gf.run(g, [a, b], backend=backend), want):
            np.testing.assert_array_equal(got, w, err_msg=backend)


def test_bit_shift_out_of_range_amounts():
    a = np.array([1, -8, -8, 3, 3, -1], np.int16)
    s = np.array([3, 1, 20, -1, 16, 15], np.int16)
    left, right = _run_all(lambda a, s: (a << s, a >> s), gf.TensorSpec((6,), "int16"), a,
                           gf.TensorSpec((6,), "int16"), s)
    np.testing.assert_array_equal(left, [8, -16, 0, 0, 0, -32768])
    np.testing.assert_array_equal(right, [0, -4, -1, 0, 0, -1])  # arithmetic; out of range: sign fill


def test_bitwise_operators_on_ints_logical_on_bools():
    i = np.array([12, -7, 0, 255], np.int64)
    b = np.array([True, False, True, False])
    out = _run_all(lambda i, b: (i & 10, i | 3, i ^ -1, ~i, ~b, b & ~b),
                   gf.TensorSpec((4,), "int64"), i, gf.TensorSpec((4,), "bool"), b)
    for got, want in zip(out, [i & 10, i | 3, i ^ -1, ~i, ~b, b & ~b]):
        np.testing.assert_array_equal(got, want)


def test_isnan_isinf_flags():
    x = np.array([np.nan, np.inf, -np.inf, 1.0], np.float64)
    out = _run_all(lambda x: (gf.isnan(x), gf.isinf(x), gf.isinf(x, detect_negative=False),
                              gf.isinf(x, detect_positive=False)), gf.TensorSpec((4,), "float64"), x)
    np.testing.assert_array_equal(out[0], [True, False, False, False])
    np.testing.assert_array_equal(out[1], [False, True, True, False])
    np.testing.assert_array_equal(out[2], [False, True, False, False])
    np.testing.assert_array_equal(out[3], [False, False, True, False])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inverse_and_hyperbolic_trig_match_numpy(dtype):
    x = np.linspace(-0.95, 0.95, 9).astype(dtype)
    fns = {"asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "atanh": np.arctanh, "asinh": np.arcsinh,
           "sinh": np.sinh, "cosh": np.cosh, "tan": np.tan}
    g = gf.trace(lambda x: tuple(getattr(gf, n)(x) for n in fns) + (gf.acosh(x * x + 1.5),),
                 gf.TensorSpec((9,), dtype))
    want = [f(x) for f in fns.values()] + [np.arccosh(x * x + dtype_cast(1.5, dtype))]
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=2e-6, atol=2e-6)
    for backend in BACKENDS:
        for name, got, w in zip(list(fns) + ["acosh"], gf.run(g, [x], backend=backend), want):
            np.testing.assert_allclose(got, w, err_msg=f"{backend} {name}", **tol)


def dtype_cast(v, dtype):
    return np.asarray(v, dtype=dtype)


def test_typed_errors():
    with pytest.raises(gf.DTypeError):
        gf.trace(lambda x: gf.floor(x), gf.TensorSpec((3,), "int32"))
    with pytest.raises(gf.DTypeError):
        gf.trace(lambda x: gf.bitwise_and(x, x), gf.TensorSpec((3,), "float32"))
    with pytest.raises(gf.DTypeError):
        gf.trace(lambda x: gf.isnan(x), gf.TensorSpec((3,), "int64"))
    with pytest.raises(gf.ShapeError):
        gf.trace(lambda x: gf.bit_shift(x, x, "UP"), gf.TensorSpec((3,), "uint8"))
