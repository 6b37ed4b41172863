"""graphforge/dtypes.py: the dtypes added for issue 19 (uint16, uint64, float8 ×4, float4e2m1, int4/uint4,
int2/uint2) — names,
NumPy mapping, promotion, their text spelling, and casts between them on every back end."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import graphforge as gf
from graphforge import dtypes as _dt

NEW = {"uint16": np.uint16, "uint64": np.uint64, "int4": ml_dtypes.int4, "uint4": ml_dtypes.uint4,
       "float8e4m3fn": ml_dtypes.float8_e4m3fn, "float8e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
       "float8e5m2": ml_dtypes.float8_e5m2, "float8e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
       "int2": ml_dtypes.int2, "uint2": ml_dtypes.uint2, "float4e2m1": ml_dtypes.float4_e2m1fn,
       "float8e8m0": ml_dtypes.float8_e8m0fnu}


@pytest.mark.parametrize("name", sorted(NEW))
def test_names_and_numpy_mapping(name):
    assert _dt.to_numpy_dtype(name) == np.dtype(NEW[name])
    assert _dt.from_numpy_dtype(np.dtype(NEW[name])) == name
    assert _dt.canonical_dtype(NEW[name]) == name
    assert _dt.from_short_name(_dt.short_name(name)) == name
    assert _dt.is_float(name) == name.startswith("float")
    assert _dt.is_int(name) != name.startswith("float")


def test_aliases_and_ranges():
    assert _dt.canonical_dtype("float8_e4m3fn") == "float8e4m3fn"
    assert _dt.int_range("int4") == (-8, 7) and _dt.int_range("uint4") == (0, 15)
    assert _dt.int_range("uint64") == (0, 2 ** 64 - 1)
    assert _dt.float_max("float8e4m3fn") == 448.0 and _dt.float_max("float8e5m2") == 57344.0


def test_promotion():
    assert _dt.promote_types("int4", "uint4") == "int8"
    assert _dt.promote_types("uint16", "int16") == "int32"
    assert _dt.promote_types("uint64", "int64") == "int64"
    assert _dt.promote_types("float8e4m3fn", "float8e5m2") == "float16"
    assert _dt.promote_types("float8e4m3fn", "bfloat16") == "bfloat16"
    assert _dt.promote_types("int4", "float8e5m2") == "float8e5m2"


def test_text_round_trip_of_types_and_literals():
    text = """graph g(%x: u16[2], %y: u64[2], %z: f8e5m2fnuz[2]) {
  %0: i4[3] = constant() {value=tensor<i4[3]>[1, -8, 7]}
  %1: f8e4m3fn[2] = constant() {value=tensor<f8e4m3fn[2]>[0.5, -448.0]}
  %2: u4[2] = cast(%x) {dtype="uint4"}
  return %0 as a, %1 as b, %2 as c
}
"""
    g = gf.parse(text)
    assert str(g) == text
    with pytest.raises(gf.ParseError, match="does not fit in int4"):
        gf.parse(text.replace("[1, -8, 7]", "[1, -9, 7]"))


@pytest.mark.parametrize("backend", ["reference", "jax", "onnxruntime"])
def test_saturating_and_plain_float8_casts(backend):
    x = np.array([0.3, 1000.0, -np.inf, np.inf, -1e6, 2.0], np.float32)
    g = gf.trace(lambda x: (gf.cast(x, "float8e4m3fn"), gf.cast(x, "float8e5m2", saturate=False),
                            gf.cast(gf.cast(x, "int4"), "int32"), gf.cast(gf.cast(x, "uint64"), "float64")),
                 gf.TensorSpec((6,)))
    sat, plain, i4, u64 = gf.run(g, [x], backend=backend)
    assert sat.dtype == np.dtype(ml_dtypes.float8_e4m3fn) and plain.dtype == np.dtype(ml_dtypes.float8_e5m2)
    np.testing.assert_array_equal(sat.astype(np.float32), [0.3125, 448, -448, 448, -448, 2])
    np.testing.assert_array_equal(plain.astype(np.float32)[[0, 2, 3, 4, 5]], [0.3125, -np.inf, np.inf, -np.inf, 2])
    np.testing.assert_array_equal(i4[[0, 5]], [0, 2])  # truncation toward zero
    assert u64[1] == 1000.0 and u64[5] == 2.0


def test_onnx_export_needs_the_opset_of_the_dtype():
    g = gf.trace(lambda x: gf.cast(x, "float8e4m3fn"), gf.TensorSpec((2,)))
    with pytest.raises(gf.UnsupportedOpError):
        gf.to_onnx(g, opset=17)
    proto = gf.to_onnx(g, opset=19)
    assert [n.op_type for n in proto.graph.node] == ["Cast"]


@pytest.mark.parametrize("backend", ["jax", "onnxruntime"])
def test_float8_arithmetic_computes_in_float32_like_the_reference(backend):
    f8 = ml_dtypes.float8_e4m3fn
    a = np.array([1.5, -2, 300, 0.25], np.float32).astype(f8)
    b = np.array([0.5, 3, 400, -0.125], np.float32).astype(f8)
    g = gf.trace(lambda a, b: (a + b, gf.relu(a * b), gf.floor(a)), gf.TensorSpec((4,), "float8e4m3fn"),
                 gf.TensorSpec((4,), "float8e4m3fn"))
    want = gf.run(g, [a, b], backend="reference")
    assert np.isnan(want[0][2].astype(np.float32))  # 700 overflows e4m3fn: NaN, as NumPy's conversion
    for got, w in zip(gf.run(g, [a, b], backend=backend), want):
        np.testing.assert_array_equal(got.astype(np.float32), w.astype(np.float32))


@pytest.mark.parametrize("backend", ["reference", "jax"])
def test_float4_and_int2_casts(backend):
    x = np.array([0.3, 2.6, -7.0, 100.0, -1.9], np.float32)
    g = gf.trace(lambda x: (gf.cast(x, "float4e2m1"), gf.cast(x, "int2"), gf.cast(gf.cast(x, "uint2"), "int32")),
                 gf.TensorSpec((5,)))
    f4, i2, u2 = gf.run(g, [x], backend=backend)
    np.testing.assert_array_equal(f4.astype(np.float32), [0.5, 3.0, -6.0, 6.0, -2.0])  # ml_dtypes' rounding
    np.testing.assert_array_equal(i2.astype(np.int32), [0, -2, 1, 0, -1])  # truncate, then wrap mod 4
    np.testing.assert_array_equal(u2, [0, 2, 1, 0, 3])


def test_int2_on_onnxruntime_float4_refused_by_onnxruntime():
    x = np.array([0.3, 2.6, -7.0, 1.0], np.float32)
    g = gf.trace(lambda x: gf.cast(x, "int2"), gf.TensorSpec((4,)))
    np.testing.assert_array_equal(gf.run(g, [x], backend="onnxruntime")[0], gf.run(g, [x], backend="reference")[0])
    g4 = gf.trace(lambda x: gf.cast(x, "float4e2m1"), gf.TensorSpec((4,)))
    assert [n.op_type for n in gf.to_onnx(g4).graph.node] == ["Cast"]  # valid ONNX (opset >= 23) ...
    with pytest.raises(gf.BackendError):  # ... that onnxruntime 1.32 has no float4 Cast kernel for
        gf.run(g4, [x], backend="onnxruntime")


@pytest.mark.parametrize("backend", ["reference", "jax", "onnxruntime"])
@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
def test_e8m0_cast_rounds_the_exponent(backend, round_mode):
    x = np.array([0.3, 1.0, 3.0, 1.5, np.inf, 3.0e38], np.float32)
    g = gf.trace(lambda x: gf.cast(x, "float8e8m0", round_mode=round_mode), gf.TensorSpec((6,)))
    got = gf.run(g, [x], backend=backend)[0].astype(np.float32)
    want = {"up": [0.5, 1, 4, 2, np.nan, 2.0 ** 127], "down": [0.25, 1, 2, 1, np.nan, 2.0 ** 127],
            "nearest": [0.25, 1, 4, 2, np.nan, 2.0 ** 127]}[round_mode]  # saturates at 2**127
    np.testing.assert_array_equal(got, np.array(want, np.float32))
