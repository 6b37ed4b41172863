"""decompose: composite ops a target does not keep become their registry decomposition (recursively),
with the provenance of the node they replace; the pipeline pass keeps nothing."""
import numpy as np
import pytest

import graphforge as gf
from graphforge.errors import PassError, ShapeError
from graphforge.ops.registry import OpDef, register_op, unregister_op
from graphforge.passes import list_passes, optimize
from graphforge.passes.decompose import decompose
from graphforge.trace.tensor import apply
from passtest import check_pass

LINEAR_GELU = """
graph g(%x: f32[batch,4]) {
  param %w: f32[3,4]
  param %b: f32[3]
  %0: f32[batch,3] = linear(%x, %w, %b) {activation="gelu_tanh", transpose_b=true} @fc (m.py:3)
  return %0 as out
}"""


def test_is_a_registered_pass():
    assert "decompose" in list_passes()


def test_linear_with_activation_becomes_matmul_add_and_the_activation_op():
    check_pass(LINEAR_GELU, "decompose", """
graph g(%x: f32[batch,4]) {
  param %w: f32[3,4]
  param %b: f32[3]
  %0: f32[4,3] = transpose(%w) {perm=none} @fc (m.py:3)
  %1: f32[batch,3] = matmul(%x, %0) @fc (m.py:3)
  %2: f32[batch,3] = add(%1, %b) @fc (m.py:3)
  %3: f32[batch,3] = gelu(%2) {approximate="tanh"} @fc (m.py:3)
  return %3 as out
}""")


def test_layer_norm_decomposes_into_primitives_and_computes_the_same():
    g = gf.parse("""
graph g(%x: f64[batch,seq,6], %s: f64[6], %t: f64[6]) {
  %0: f64[batch,seq,6] = layer_norm(%x, %s, %t) {axis=-1, eps=0.001} @ln (m.py:9)
  %1: f64[batch,seq,6] = relu(%0) (m.py:10)
  return %1 as out
}""")
    d = optimize(g, "decompose", verify=True)
    assert "layer_norm" not in d.op_counts() and d.op_counts()["relu"] == 1
    assert all(n.scope == "ln" and n.loc == "m.py:9" for n in d.nodes if n.op != "relu")
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s) for s in [(2, 3, 6), (6,), (6,)]]
    np.testing.assert_allclose(gf.run(d, xs)[0], gf.run(g, xs)[0], rtol=1e-12, atol=1e-12)


def test_keep_decides_per_node_and_the_results_are_decomposed_again():
    g = gf.parse(LINEAR_GELU)
    # keep the gelu the linear turns into, decompose linear: one level
    kept, changed = decompose(g.copy(), lambda n: n.op != "linear")
    assert changed and kept.op_counts() == {"transpose": 1, "matmul": 1, "add": 1, "gelu": 1}
    # keep linear: nothing to do, the graph is returned as it is
    same, changed = decompose(g, lambda n: n.op == "linear")
    assert same is g and not changed and g.op_counts() == {"linear": 1}


def test_nothing_composite_means_unchanged():
    g = gf.parse("graph g(%x: f32[4]) {\n  %0: f32[4] = exp(%x)\n  return %0 as out\n}")
    assert decompose(g) == (g, False)


@pytest.fixture
def custom_ops():
    names = []

    def add(name, decompose_fn):
        register_op(OpDef(name=name, type_rule=lambda ts, a: [ts[0]], reference=lambda xs, a, env=None: [xs[0]],
                          vjp=None, decompose=decompose_fn))
        names.append(name)

    yield add
    for name in names:
        unregister_op(name)


def test_a_refused_decomposition_leaves_the_node_and_says_why(custom_ops):
    def refuse(inputs, attrs):
        raise ShapeError("needs a static batch")

    custom_ops("test_refusing", refuse)
    g = gf.trace(lambda x: apply("test_refusing", x), gf.TensorSpec(("batch", 2), "float32", name="x"))
    refused = []
    out, changed = decompose(g, refused=refused)
    assert not changed and out.op_counts() == {"test_refusing": 1}
    assert [(n.op, "needs a static batch" in why) for n, why in refused] == [("test_refusing", True)]


def test_a_decomposition_that_never_ends_is_a_pass_error(custom_ops):
    custom_ops("test_forever", lambda inputs, attrs: [apply("test_forever", inputs[0] * 1.0)])
    g = gf.trace(lambda x: apply("test_forever", x), gf.TensorSpec((2,), "float32", name="x"))
    with pytest.raises(PassError, match="does not terminate"):
        decompose(g)


def test_a_decomposition_with_the_wrong_type_is_a_pass_error(custom_ops):
    custom_ops("test_wrong", lambda inputs, attrs: [gf.cast(inputs[0], "float64")])
    g = gf.trace(lambda x: apply("test_wrong", x), gf.TensorSpec((2,), "float32", name="x"))
    with pytest.raises(PassError, match="decomposition of test_wrong gives"):
        decompose(g)
