"""Broadcasting two different symbolic dims (issue #14): the result dim is ``max(a, b)``, with the guard
that they broadcast (equal, or one of them 1), checked with the model's line when inputs are bound."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge.guards import guards

SPECS = (gf.TensorSpec(("batch", "a"), "float32", name="x"), gf.TensorSpec(("b",), "float32", name="y"))


def _model(x, y):
    return (x + y) * 2


def test_the_dim_is_max_and_the_guard_is_recorded():
    g = gf.trace(_model, *SPECS)
    assert str(g.outputs[0].type) == "f32[batch,max(a,b)]"
    (guard,) = guards(g)
    assert str(guard.requirement).startswith("a and b broadcast") and guard.op == "add"
    assert str(gf.parse(str(g))) == str(g)


@pytest.mark.parametrize("backend", ["reference", "jax", "onnxruntime"])
def test_every_broadcasting_binding_runs(backend):
    g = gf.trace(_model, *SPECS)
    for a, b in ((3, 3), (1, 4), (4, 1)):
        x, y = np.ones((2, a), np.float32), np.arange(b, dtype=np.float32)
        np.testing.assert_allclose(gf.run(g, {"x": x, "y": y}, backend=backend)[0], (x + y) * 2)


def test_sizes_that_do_not_broadcast_name_the_guard_and_the_line():
    g = gf.trace(_model, *SPECS)
    with pytest.raises(gf.InputError, match=r"a and b broadcast.*a = 3.*b = 4") as info:
        gf.run(g, {"x": np.ones((2, 3), np.float32), "y": np.ones(4, np.float32)})
    assert "test_symbolic_broadcast.py" in str(info.value)


def test_a_symbolic_dim_never_meets_a_different_static_one():
    with pytest.raises(gf.ShapeError, match="cannot be broadcast"):
        gf.trace(_model, gf.TensorSpec(("batch", "a"), "float32"), gf.TensorSpec((4,), "float32"))


def test_the_gradient_of_such_a_broadcast_is_a_typed_error():
    g = gf.trace(lambda x, y: _model(x, y).sum(), *SPECS)
    with pytest.raises(gf.ShapeError, match="only known at run time"):
        gf.grad(g, wrt=["x"])
