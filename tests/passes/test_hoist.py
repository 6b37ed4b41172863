"""``hoist``: loop-invariant nodes of scan/while bodies move before the loop (IR text in → out),
the loop reads them as new consts, unread consts go, values stay equal, nested loops hoist twice."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from passtest import assert_idempotent, check_pass, random_inputs



def _equal_on_backends(before, after):
    inputs = random_inputs(before, 1)
    for backend in ("reference", "jax"):
        want = gf.run(before, inputs, backend=backend)
        got = gf.run(after, inputs, backend=backend)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_invariant_nodes_leave_a_scan_body():
    ir_in = """
graph g(%x: f32[5,4], %w: f32[4,4], %b: f32[4]) {
  %0: f32[4] = exp(%b)
  %1: f32[4], %2: f32[5,4] = scan(%w, %b, %0, %x) {length=5, num_carry=1, num_consts=2}
    body(%3: f32[4,4], %4: f32[4], %5: f32[4], %6: f32[4]):
      %7: f32[4,4] = tanh(%3)
      %8: f32[] = constant() {value=tensor<f32[]>[2.0]}
      %9: f32[4] = mul(%4, %8)
      %10: f32[4] = matmul(%5, %7)
      %11: f32[4] = add(%10, %9)
      %12: f32[4] = add(%11, %6)
      %13: f32[4] = mul(%12, %8)
      yield(%12, %13)
  return %1 as h, %2 as ys
}
"""
    ir_out = """
graph g(%x: f32[5,4], %w: f32[4,4], %b: f32[4]) {
  %0: f32[4] = exp(%b)
  %1: f32[4,4] = tanh(%w)
  %2: f32[] = constant() {value=tensor<f32[]>[2.0]}
  %3: f32[4] = mul(%b, %2)
  %4: f32[4], %5: f32[5,4] = scan(%1, %3, %0, %x) {length=5, num_carry=1, num_consts=2, remat=false, reverse=false}
    body(%6: f32[4,4], %7: f32[4], %8: f32[4], %9: f32[4]):
      %10: f32[] = constant() {value=tensor<f32[]>[2.0]}
      %11: f32[4] = matmul(%8, %6)
      %12: f32[4] = add(%11, %7)
      %13: f32[4] = add(%12, %9)
      %14: f32[4] = mul(%13, %10)
      yield(%13, %14)
  return %4 as h, %5 as ys
}
"""
    before = gf.parse(ir_in)
    after = check_pass(ir_in, "infer,hoist", ir_out, equivalent=False)
    _equal_on_backends(before, after)
    report = gf.passes.PassManager("infer,hoist")
    report.run(before)
    assert report.report.stats("hoist") == {"hoisted": 2}


def test_nested_loops_hoist_out_of_both_and_while_loops_too():
    def f(x, w):
        def outer(c, xt):
            def inner(d):
                return d * gf.tanh(w) + xt  # tanh(w) is invariant in both loops
            d = gf.while_loop(lambda d: d.sum() < 100.0, inner, c, max_iterations=3)
            return d, None
        return gf.scan(outer, x[0], x)[0]

    g = gf.trace(f, gf.TensorSpec((3, 4)), gf.TensorSpec((4,)))
    after = gf.optimize(g, "infer,hoist", verify=True)
    top = [n.op for n in after.nodes]
    assert "tanh" in top and all(n.op != "tanh" for n in after.walk() if n.block is not after.nodes)
    _equal_on_backends(g, after)
    assert_idempotent(after, "infer,hoist")


def test_random_and_carry_dependent_nodes_stay():
    def f(x):
        return gf.scan(lambda c, xt: (gf.sin(c) + xt, c * 2.0), x[0], x)[1]

    g = gf.trace(f, gf.TensorSpec((3, 4)))
    after = gf.optimize(g, "infer,hoist", verify=True)
    assert str(after) == str(gf.optimize(g, "infer", verify=True))


def test_default_pipeline_hoists():
    from graphforge.passes import DEFAULT_PIPELINE
    assert "hoist" in DEFAULT_PIPELINE
    g = gf.trace(lambda x, w: gf.scan(lambda c, xt: (c @ gf.exp(w) + xt, None), x[0], x)[0],
                 gf.TensorSpec((3, 4)), gf.TensorSpec((4, 4)))
    after = gf.optimize(g, verify=True)
    assert "exp" in [n.op for n in after.nodes]
    _equal_on_backends(g, after)


@pytest.mark.parametrize("pipeline", ["hoist", "infer,hoist,dce"])
def test_graph_without_loops_is_unchanged(pipeline):
    g = gf.trace(lambda x: gf.exp(x) * 2.0, gf.TensorSpec((3,)))
    assert str(gf.optimize(g, pipeline, verify=True)) == str(g)
