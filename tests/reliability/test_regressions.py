"""Minimised regressions for bugs the fuzzer and the hostile-input corpus found."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge.ir.dims import check_dim


def _gather_graph():
    return gf.trace(lambda x, i: gf.gather(x, i, axis=1), gf.TensorSpec((2, 5)), gf.TensorSpec((2,), "int64"))


@pytest.mark.parametrize("bad", [-6, 5, -11])
def test_gather_reference_refuses_out_of_range_indices(bad):
    """Found by the fuzzer: indices below -n wrapped twice in the reference (np.take wraps again)
    while JAX clamps, so the back ends silently disagreed; out of range is now an error, as for
    embedding."""
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    with pytest.raises(gf.BackendError, match=r"out of range \[-5, 5\)"):
        gf.run(_gather_graph(), [x, np.array([0, bad])])
    assert gf.run(_gather_graph(), [x, np.array([-5, 4])])[0].tolist() == [[0, 4], [5, 9]]


def test_scatter_add_reference_refuses_out_of_range_indices():
    g = gf.trace(lambda b, i, u: gf.scatter_add(b, i, u, axis=0), gf.TensorSpec((3,)), gf.TensorSpec((1,), "int64"),
                 gf.TensorSpec((1,)))
    with pytest.raises(gf.BackendError, match="out of range"):
        gf.run(g, [np.zeros(3, np.float32), np.array([-4]), np.ones(1, np.float32)])


def test_dims_beyond_int64_are_a_parse_error():
    """Found by the corpus: f32[99999999999999999999999] parsed, and failed later in NumPy."""
    with pytest.raises(gf.ShapeError, match="int64"):
        check_dim(2**63)
    with pytest.raises(gf.ParseError, match="does not fit in int64"):
        gf.parse("graph g(%x: f32[99999999999999999999999]) {\n  return %x\n}\n")
    assert check_dim(2**63 - 1) == 2**63 - 1


def test_float64_erf_after_relu_loads_in_onnxruntime():
    """Found by the fuzzer (seeds 21289, 21514 of tests/fuzz/run.py)."""
    pytest.importorskip("onnxruntime")
    g = gf.trace(lambda x: gf.erf(gf.relu(x)), gf.TensorSpec((2, 3), "float64"))
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    np.testing.assert_allclose(gf.run(g, [x], backend="onnxruntime")[0], gf.run(g, [x])[0], rtol=1e-12, atol=1e-12)


def test_exported_dim_expressions_import_as_expressions():
    """Found by the fuzzer's import(export(g)) oracle (seeds 211, 271): a ``batch+1`` dim_param came
    back as an unrelated symbol ``batch_1``, and the imported graph failed its own shape check."""
    pytest.importorskip("onnxruntime")
    g = gf.trace(lambda x, y: gf.pad(x, [1, 0, 0, 0], value=0.5) / y,
                 gf.TensorSpec(("batch", 3)), gf.TensorSpec(("batch+1", 3)))
    back = gf.from_onnx(gf.to_onnx(g))
    assert [tuple(v.type.shape) for v in back.inputs] == [("batch", 3), ("batch+1", 3)]
    x, y = np.ones((2, 3), np.float32), np.full((3, 3), 2.0, np.float32)
    np.testing.assert_array_equal(gf.run(back, [x, y])[0], gf.run(g, [x, y])[0])
    # floor/max atoms too (seeds 30144, 30179): the input types come back exactly
    g = gf.trace(lambda x, y, z: (gf.relu(x), gf.relu(y), gf.relu(z)), gf.TensorSpec(("batch", "h")),
                 gf.TensorSpec(("batch+floor(batch/3)", 3)), gf.TensorSpec(("floor(h/2)+1", "max(batch,h)")))
    back = gf.from_onnx(gf.to_onnx(g))
    assert [v.type.shape for v in back.inputs] == [v.type.shape for v in g.inputs]


def test_a_symbol_only_inputs_expressions_name_imports_as_that_symbol():
    """Found by the 10,000-graph fuzz tier (seed 2171): inputs ``f32[batch,seq+2]`` and
    ``f32[seq+4]`` (no input is plain ``seq``) came back as unrelated symbols ``seq_2``, ``seq_4``, and
    a Scan whose carry is the one and whose body adds a slice of the other failed its carry check.
    A symbol plus a constant pins the symbol, so both are expressions in ``seq`` again."""
    pytest.importorskip("onnxruntime")
    g = gf.trace(lambda a, b: gf.concat([a, b], axis=-1) * 2.0,
                 gf.TensorSpec(("batch", "seq+2")), gf.TensorSpec(("batch", "seq+4")))
    back = gf.from_onnx(gf.to_onnx(g))
    assert [v.type.shape for v in back.inputs] == [v.type.shape for v in g.inputs]
    assert back.outputs[0].type.shape == ("batch", "2*seq+6")
    x, y = np.ones((2, 3), np.float32), np.ones((2, 5), np.float32)
    np.testing.assert_array_equal(gf.run(back, [x, y])[0], gf.run(g, [x, y])[0])
    with pytest.raises(gf.InputError, match="seq"):
        gf.run(back, [x, np.ones((2, 6), np.float32)])


def test_dim_param_names_that_only_look_like_expressions_stay_one_symbol():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    vi = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch-size", "floor(s/2)"])]
    m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "m", vi,
                                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch-size", "floor(s/2)"])]),
                          opset_imports=[helper.make_opsetid("", 21)])
    (x,) = gf.from_onnx(m).inputs
    assert x.type.shape == ("batch_size", "floor_s_2_")


def test_symbolic_split_sizes_import_back():
    """Found by the fuzzer's import(export(g)) oracle: a split whose sizes are symbolic dims exports
    its sizes as shape arithmetic, which the importer refused (it wanted integer constants)."""
    pytest.importorskip("onnxruntime")
    g = gf.trace(lambda x: gf.split(x, [2, "seq"], axis=1)[1] * 2.0, gf.TensorSpec(("batch", "seq+2")))
    back = gf.from_onnx(gf.to_onnx(g))
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    np.testing.assert_array_equal(gf.run(back, [x])[0], x[:, 2:] * 2)


@pytest.mark.parametrize("perm,shape", [(None, ("batch", 4)), ([0, 2, 1], (2, "batch", 4))])
def test_a_transposed_matrix_times_a_vector_on_onnxruntime(perm, shape):
    """Found by the 10,000-graph fuzz tier (seed 8913): onnxruntime 1.32 fuses a Transpose feeding
    MatMul's A into FusedMatMul(transA=1), which computes the wrong numbers when B is 1-D; the
    exporter writes a computed matrix times a vector as times a (K, 1) matrix."""
    pytest.importorskip("onnxruntime")
    g = gf.trace(lambda a, v: gf.matmul(gf.transpose(a, perm), v), gf.TensorSpec(shape), gf.TensorSpec(("batch",)))
    rng = np.random.default_rng(3)
    for n in (1, 3, 6):
        a = rng.standard_normal([n if d == "batch" else d for d in shape]).astype(np.float32)
        v = rng.standard_normal(n).astype(np.float32)
        want = np.swapaxes(a, -1, -2) @ v
        np.testing.assert_allclose(gf.run(g, [a, v], backend="onnxruntime")[0], want, rtol=1e-5, atol=1e-6)


def test_a_float64_transposed_convolution_over_symbolic_sizes_exports():
    """Found by a fuzz campaign (seed 39801): a float64 ``conv_transpose2d`` (no onnxruntime kernel:
    exported as a convolution over the zero-dilated input) with a symbolic H/W failed the export
    on plain ``int`` arithmetic over the sizes."""
    pytest.importorskip("onnxruntime")
    g = gf.trace(lambda x, w: gf.conv_transpose2d(x, w, stride=(2, 1), padding=1, groups=2),
                 gf.TensorSpec((1, 2, "h", "w"), "float64"), gf.TensorSpec((2, 1, 3, 2), "float64"))
    rng = np.random.default_rng(0)
    for h, w in ((4, 5), (3, 2)):
        args = [rng.standard_normal((1, 2, h, w)), rng.standard_normal((2, 1, 3, 2))]
        np.testing.assert_allclose(gf.run(g, args, backend="onnxruntime")[0], gf.run(g, args)[0], rtol=1e-10, atol=1e-12)
