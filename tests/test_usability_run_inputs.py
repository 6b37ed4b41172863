"""Usability of gf.run / gf.summary / gf.save_params / gf.load_params / gf.grad for newcomers:
array-likes other than NumPy, swapped arguments, a Module where a Graph is expected."""
import numpy as np
import pytest

import graphforge as gf
from graphforge import nn


def _graph():
    return gf.trace(nn.Linear(4, 2), gf.TensorSpec(("batch", 4)), seed=0)


class _ArrayLike:
    """A foreign tensor (a jax.Array, a torch tensor on CPU...): shape + __array__, iterable by rows."""

    def __init__(self, a):
        self._a = a
        self.shape, self.ndim, self.dtype = a.shape, a.ndim, a.dtype

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return iter(self._a)


def test_a_foreign_array_is_one_input_not_a_sequence_of_rows():
    g = _graph()
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    want = gf.run(g, x)[0]
    np.testing.assert_array_equal(gf.run(g, _ArrayLike(x))[0], want)


def test_a_jax_array_is_one_input():
    jnp = pytest.importorskip("jax.numpy")
    g = _graph()
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(gf.run(g, jnp.asarray(x), backend="reference")[0], gf.run(g, x)[0])


def test_a_nested_list_for_a_one_input_graph_says_how_lists_are_read():
    g = _graph()
    with pytest.raises(gf.InputError, match="one array per input"):
        gf.run(g, np.zeros((3, 4)).tolist())


def test_load_params_accepts_the_save_params_argument_order(tmp_path):
    g = _graph()
    path = str(tmp_path / "p.safetensors")
    gf.save_params(g, path)
    other = gf.trace(nn.Linear(4, 2), gf.TensorSpec(("batch", 4)), seed=1)
    loaded = gf.load_params(other, path)   # (graph, path), like save_params(graph, path)
    assert sorted(loaded) == ["bias", "weight"]
    np.testing.assert_array_equal(other.params["weight"], g.params["weight"])


def test_load_params_with_a_non_path_is_a_load_error():
    with pytest.raises(gf.LoadError, match="path"):
        gf.load_params(123)


@pytest.mark.parametrize("call", [
    lambda m: gf.summary(m, print_fn=None),
    lambda m: gf.run(m, np.zeros((2, 4), np.float32)),
    lambda m: gf.grad(m),
    lambda m: gf.save_params(m, "/nonexistent/never-written.safetensors"),
], ids=["summary", "run", "grad", "save_params"])
def test_an_untraced_module_gets_a_hint_to_trace_it(call):
    with pytest.raises(gf.GraphforgeError, match="gf.trace"):
        call(nn.Linear(4, 2))
