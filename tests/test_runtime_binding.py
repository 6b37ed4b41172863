"""gf.run: binding inputs to the graph's specs (every mistake is a gf.InputError), parameter
overrides, and back-end selection."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf


@pytest.fixture
def two_input_graph():
    return gf.trace(lambda a, b: (a * 2.0, b.sum(-1)), gf.TensorSpec(("batch", 3), "float32"),
                    gf.TensorSpec(("batch", "k"), "int32"))


def a(shape=(2, 3)):
    return np.ones(shape, np.float32)


def b(shape=(2, 4)):
    return np.ones(shape, np.int32)


def test_inputs_by_name_by_position_and_single():
    g = gf.trace(lambda x: x + 1.0, gf.TensorSpec(("n",), "float32"))
    for inputs in ({"x": np.zeros(3, np.float32)}, [np.zeros(3, np.float32)], np.zeros(3, np.float32)):
        np.testing.assert_array_equal(gf.run(g, inputs)[0], np.ones(3, np.float32))


def test_same_kind_inputs_are_converted(two_input_graph):
    out = gf.run(two_input_graph, [np.ones((2, 3)), np.ones((2, 4), np.int64)])
    assert out[0].dtype == np.float32 and out[1].dtype == np.int32


def test_symbolic_dims_bind_per_call(two_input_graph):
    assert gf.run(two_input_graph, [a((5, 3)), b((5, 1))])[1].shape == (5,)
    assert gf.run(two_input_graph, [a((1, 3)), b((1, 7))])[0].shape == (1, 3)


@pytest.mark.parametrize("inputs,match", [
    ([a((2, 3, 1)), b()], "rank 2"),
    ([a((2,)), b()], "rank 2"),
    ([a((2, 4)), b()], "axis 1 is 4, expected 3"),
    ([a((2, 3)), b((3, 4))], "axis 0 is 3, expected batch \\(already bound to 2\\)"),
    ([a(), np.ones((2, 4), np.float32)], "dtype float32, the graph expects int32"),
    ([np.ones((2, 3), np.int32), b()], "dtype int32, the graph expects float32"),
    ([np.ones((2, 3), bool), b()], "dtype bool"),
    ([np.array([["a", "b", "c"]] * 2), b()], "dtype <U1"),
    ([a()], "takes 2 inputs"),
    ([a(), b(), b()], "takes 2 inputs"),
    ({"a": a()}, "missing \\['b'\\]"),
    ({"a": a(), "b": b(), "c": b()}, "unexpected \\['c'\\]"),
    ({"b": b()}, "missing \\['a'\\]"),
    (None, "inputs must be"),
    (3.5, "takes 2 inputs"),
])
def test_binding_errors_are_input_errors(two_input_graph, inputs, match):
    with pytest.raises(gf.InputError, match=match):
        gf.run(two_input_graph, inputs)


def test_input_error_names_the_input_and_the_expected_type(two_input_graph):
    with pytest.raises(gf.InputError) as err:
        gf.run(two_input_graph, {"a": a((2, 4)), "b": b()})
    assert "'a'" in str(err.value) and "f32[batch,3]" in str(err.value)
    assert isinstance(err.value, ValueError)  # also catchable as a ValueError


def test_product_dims_bind_and_check():
    g = gf.trace(lambda x, y: x.reshape(-1) + y, gf.TensorSpec(("n", 2), "float32"), gf.TensorSpec(("2*n",), "float32"))
    assert gf.run(g, [np.ones((3, 2), np.float32), np.ones(6, np.float32)])[0].shape == (6,)
    with pytest.raises(gf.InputError, match="expected 2\\*n"):
        gf.run(g, [np.ones((3, 2), np.float32), np.ones(5, np.float32)])


def test_param_overrides_and_errors(mlp_graph):
    x = np.ones((2, 6), np.float32)
    zeros = {name: np.zeros_like(v) for name, v in mlp_graph.params.items()}
    np.testing.assert_array_equal(gf.run(mlp_graph, [x], params=zeros)[0], np.zeros((2, 3), np.float32))
    with pytest.raises(gf.InputError, match="does not have: nope"):
        gf.run(mlp_graph, [x], params={"nope": np.zeros(1)})
    with pytest.raises(gf.InputError, match="layer1.bias"):
        gf.run(mlp_graph, [x], params={"layer1.bias": np.zeros(3)})
    bare = gf.parse(str(mlp_graph))
    with pytest.raises(gf.LoadError, match="no values for parameters"):
        gf.run(bare, [x])
    np.testing.assert_array_equal(gf.run(bare, [x], params=mlp_graph.params)[0], gf.run(mlp_graph, [x])[0])


def test_unknown_backend_is_an_input_error(mlp_graph):
    with pytest.raises(gf.InputError, match="unknown backend"):
        gf.run(mlp_graph, [np.ones((1, 6), np.float32)], backend="tpu9000")


def test_reference_errors_name_the_node():
    g = gf.trace(lambda x, i: gf.gather(x, i), gf.TensorSpec((3,), "float32"), gf.TensorSpec((2,), "int64"))
    with pytest.raises(gf.BackendError) as err:
        gf.run(g, [np.ones(3, np.float32), np.array([0, 7])])
    assert err.value.op == "gather" and "test_runtime_binding.py:" in str(err.value)
