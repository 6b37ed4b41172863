"""``loop_weights``: a loop body's ``linear`` on a loop-const ``(out, in)`` weight reads the weight
transposed once before the loop, and a scanned input projection's bias is added in the body (IR text
in → out, values equal); per-step weights and projections read elsewhere stay; the JAX lowering
applies it to an LSTM's gradient graph (on its own copy) and the gradients stay equal."""
from __future__ import annotations

import numpy as np

import graphforge as gf
from graphforge import nn
from graphforge.passes import optimize
from passtest import check_pass

import graphforge.runtimes.jax as gf_jax


def test_a_const_weight_is_transposed_once_before_the_loop():
    ir_in = """
graph g(%x: f32[5,2,4], %h0: f32[2,4], %w: f32[4,4], %b: f32[4]) {
  %0: f32[2,4], %1: f32[5,2,4] = scan(%w, %b, %h0, %x) {length=5, num_carry=1, num_consts=2}
    body(%2: f32[4,4], %3: f32[4], %4: f32[2,4], %5: f32[2,4]):
      %6: f32[2,4] = linear(%4, %2, %3) {activation="none", transpose_b=true}
      %7: f32[2,4] = linear(%6, %2) {activation="none", transpose_b=true}
      %8: f32[2,4] = add(%7, %5)
      %9: f32[2,4] = tanh(%8)
      yield(%9, %9)
  return %0 as h, %1 as ys
}
"""
    ir_out = """
graph g(%x: f32[5,2,4], %h0: f32[2,4], %w: f32[4,4], %b: f32[4]) {
  %0: f32[4,4] = transpose(%w) {perm=[1, 0]}
  %1: f32[2,4], %2: f32[5,2,4] = scan(%b, %0, %h0, %x) {length=5, num_carry=1, num_consts=2, remat=false, reverse=false}
    body(%3: f32[4], %4: f32[4,4], %5: f32[2,4], %6: f32[2,4]):
      %7: f32[2,4] = linear(%5, %4, %3) {activation="none", transpose_b=false}
      %8: f32[2,4] = linear(%7, %4) {activation="none", transpose_b=false}
      %9: f32[2,4] = add(%8, %6)
      %10: f32[2,4] = tanh(%9)
      yield(%10, %10)
  return %1 as h, %2 as ys
}
"""
    check_pass(ir_in, "loop_weights", ir_out)


def test_a_scanned_projection_bias_is_added_in_the_body():
    ir_in = """
graph g(%x: f32[5,2,3], %h0: f32[2,4], %wi: f32[4,3], %bi: f32[4]) {
  %0: f32[5,2,4] = linear(%x, %wi, %bi) {activation="none", transpose_b=true}
  %1: f32[2,4], %2: f32[5,2,4] = scan(%h0, %0) {length=5, num_carry=1, num_consts=0}
    body(%3: f32[2,4], %4: f32[2,4]):
      %5: f32[2,4] = add(%3, %4)
      %6: f32[2,4] = tanh(%5)
      yield(%6, %6)
  return %1 as h, %2 as ys
}
"""
    ir_out = """
graph g(%x: f32[5,2,3], %h0: f32[2,4], %wi: f32[4,3], %bi: f32[4]) {
  %0: f32[5,2,4] = linear(%x, %wi) {activation="none", transpose_b=true}
  %1: f32[2,4], %2: f32[5,2,4] = scan(%bi, %h0, %0) {length=5, num_carry=1, num_consts=1, remat=false, reverse=false}
    body(%3: f32[4], %4: f32[2,4], %5: f32[2,4]):
      %6: f32[2,4] = add(%5, %3)
      %7: f32[2,4] = add(%4, %6)
      %8: f32[2,4] = tanh(%7)
      yield(%8, %8)
  return %1 as h, %2 as ys
}
"""
    check_pass(ir_in, "loop_weights", ir_out)


def test_a_projection_read_outside_the_loop_keeps_its_bias():
    ir = """
graph g(%x: f32[5,2,3], %h0: f32[2,4], %wi: f32[4,3], %bi: f32[4]) {
  %0: f32[5,2,4] = linear(%x, %wi, %bi) {activation="none", transpose_b=true}
  %1: f32[2,4], %2: f32[5,2,4] = scan(%h0, %0) {length=5, num_carry=1, num_consts=0}
    body(%3: f32[2,4], %4: f32[2,4]):
      %5: f32[2,4] = add(%3, %4)
      yield(%5, %5)
  %6: f32[5,2,4] = add(%2, %0)
  return %1 as h, %6 as ys
}
"""
    g = gf.parse(ir)
    assert str(optimize(g, "loop_weights", verify=True)) == str(g)


def test_a_weight_that_changes_every_step_is_left_alone():
    ir = """
graph g(%x: f32[5,4,4], %h0: f32[2,4]) {
  %0: f32[2,4], %1: f32[5,2,4] = scan(%h0, %x) {length=5, num_carry=1, num_consts=0}
    body(%2: f32[2,4], %3: f32[4,4]):
      %4: f32[2,4] = linear(%2, %3) {activation="none", transpose_b=true}
      yield(%4, %4)
  return %0 as h, %1 as ys
}
"""
    g = gf.parse(ir)
    assert str(optimize(g, "loop_weights", verify=True)) == str(g)


def _loop_bodies(graph):
    return [r for n in graph.walk() if n.op in ("scan", "while_loop") for r in n.regions]


def test_the_jax_lowering_feeds_an_lstm_step_untransposed_weights_and_gradients_stay_equal():
    layer = nn.LSTM(3, 4, num_layers=2, dtype="float64")
    g = gf.grad(gf.trace(lambda x: gf.mean(layer(x)[0] ** 2), gf.TensorSpec((5, 2, 3), "float64"), seed=0))
    text = str(g)
    work, _ = gf_jax.prepared(g)
    work.verify()
    assert str(g) == text, "the lowering rewrote the caller's graph"
    bodies = _loop_bodies(work)
    linears = [n for r in bodies for n in r if n.op == "linear"]
    assert linears and not any(n.attrs.get("transpose_b", True) for n in linears)
    assert not any(n.op == "transpose" for r in bodies for n in r)
    # the scans read the bare input projections; each body adds the bias to its slice
    projections = [v.producer for n in work.walk() if n.op == "scan" and not n.attrs.get("reverse")
                   for v in n.inputs if v.producer is not None and v.producer.op == "linear"]
    assert len(projections) == 2 and all(len(p.inputs) == 2 for p in projections)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    want = gf.run(g, [x], backend="reference")
    got = gf.run(g, [x], backend="jax")
    assert len(got) == len(want) == 9  # the loss and 8 weight gradients
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
