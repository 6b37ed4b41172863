"""dce: unused nodes and const params go; outputs, params and buffers stay."""
import numpy as np

import graphforge as gf
from graphforge.passes import optimize
from passtest import check_pass


def test_removes_unused_nodes_and_const_params():
    g = gf.parse("""
graph g(%x: f32[4]) {
  param %w: f32[4]
  buffer %unused_buffer: f32[4]
  const %folded: f32[4]
  const %kept: f32[4]
  %a: f32[4] = mul(%x, %folded)
  %b: f32[4] = exp(%a)
  %c: f32[4] = add(%x, %w)
  %d: f32[4] = mul(%c, %kept)
  return %d as out
}""", params={"w": np.ones(4, np.float32), "unused_buffer": np.zeros(4, np.float32),
               "folded": np.ones(4, np.float32), "kept": np.ones(4, np.float32)})
    g2 = optimize(g, "dce", verify=True)
    assert g2.op_counts() == {"add": 1, "mul": 1}
    assert sorted(g2.param_values) == ["kept", "unused_buffer", "w"]
    assert "folded" in g.param_values  # the input graph is untouched
    assert len(g.nodes) == 4


def test_keeps_every_output_including_state_updates():
    ir = """
graph g(%x: f32[4]) {
  %a: f32[4] = exp(%x)
  %b: f32[4] = neg(%x)
  %c: f32[4] = tanh(%x)
  return %a as out, %b as update:bn.running_mean
}"""
    check_pass(ir, "dce", ir.replace("  %c: f32[4] = tanh(%x)\n", ""))


def test_dce_of_multi_output_node_with_one_used_result():
    ir = """
graph g(%x: f32[6]) {
  %a: f32[2], %b: f32[4] = split(%x) {axis=0, sizes=[2, 4]}
  %c: f32[4] = exp(%b)
  return %c as out
}"""
    check_pass(ir, "dce", ir)
