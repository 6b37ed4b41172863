"""Graph.copy (built with direct slot stores) and Node.adopting: the copy is exact, linked and
independent, regions included; adopting builds the same node as Node(...) without copying attrs."""
from __future__ import annotations

import graphforge as gf
from graphforge.ir.graph import Node, Value
from graphforge.ir.types import TensorType

IR = """
graph loop(%x: f32[5,4], %w: f32[4,4]) {
  %h0: f32[4] = sum(%x) {axes=[0], keepdims=false}
  %h: f32[4], %ys: f32[5,4] = scan(%w, %h0, %x) {length=5, num_carry=1, num_consts=1, remat=false, reverse=false} @rnn (m.py:3)
    body(%wa: f32[4,4], %ha: f32[4], %xa: f32[4]):
      %0: f32[4] = matmul(%ha, %wa) @rnn (m.py:4)
      %1: f32[4] = add(%0, %xa)
      %2: bool[] = constant() {value=tensor<bool[]>[true]}
      %3: f32[4] = cond(%2, %1) {}
        then(%4: f32[4]):
          %5: f32[4] = tanh(%4)
          yield(%5)
        else(%6: f32[4]):
          yield(%6)
      yield(%3, %1) @rnn (m.py:5)
  %named: f32[4] = exp(%h)
  return %named as out, %ys as ys
}
"""


def _blocks(block):
    yield block
    for node in block:
        for region in node.regions:
            yield from _blocks(region)


def test_copy_is_exact_linked_and_independent_with_regions():
    g = gf.optimize(gf.parse(IR), "infer")  # stamps on every node
    c = g.copy()
    c.verify()  # links, uses, regions' scoping
    assert str(c) == str(g)
    old_nodes, new_nodes = list(g.walk()), list(c.walk())
    assert len(old_nodes) == len(new_nodes)
    assert not {id(n) for n in old_nodes} & {id(n) for n in new_nodes}
    for a, b in zip(old_nodes, new_nodes):
        assert (a.op, a.scope, a.loc, a.type_stamp) == (b.op, b.scope, b.loc, b.type_stamp)
        assert a.attrs == b.attrs and a.attrs is not b.attrs
        assert [o.type for o in a.outputs] == [o.type for o in b.outputs]
        for i, out in enumerate(b.outputs):
            assert out.producer is b and out.index == i and out.kind == "node"
            assert out.name == a.outputs[i].name
        for i, v in enumerate(b.inputs):
            assert (b, i) in v.uses
    for block in _blocks(c.body):
        nodes = list(block)
        assert len(block) == len(nodes) and block.first is (nodes[0] if nodes else None)
        assert block.last is (nodes[-1] if nodes else None)
        assert list(reversed(block)) == nodes[::-1]
    # editing the copy leaves the original alone
    first = c.nodes[0]
    first.attrs["keepdims"] = True
    assert g.nodes[0].attrs["keepdims"] is False
    exp = c.nodes.last
    c.replace_all_uses_with(exp.outputs[0], exp.inputs[0])
    c.erase(exp)
    assert len(c.nodes) == 2 and len(g.nodes) == 3 and g.nodes.last.op == "exp"
    c.append(exp.__class__("tanh", [c.outputs[0]], None, [TensorType((4,), "float32")]))
    assert c.nodes.last.op == "tanh" and c.nodes.last.prev.op == "scan"


def test_adopting_builds_what_the_constructor_builds_and_keeps_the_dict():
    x = Value(TensorType((2,), "float32"), name="x", kind="input")
    attrs = {"approximate": "none"}
    spec = gf.TensorSpec((2,), "float32")  # a TensorType subclass: stored as a plain TensorType
    node = Node.adopting("gelu", [x], attrs, [spec], "m", "f.py:1")
    ref = Node("gelu", [x], attrs, [spec], scope="m", loc="f.py:1")
    assert node.attrs is attrs and ref.attrs is not attrs
    assert (node.op, node.scope, node.loc, node.regions, node.type_stamp, node.block) == (
        ref.op, ref.scope, ref.loc, ref.regions, ref.type_stamp, ref.block)
    assert type(node.output.type) is TensorType and node.output.type == ref.output.type
    assert node.output.producer is node and node.output.kind == "node" and node.output.uses == []
    assert (node, 0) in x.uses and (ref, 0) in x.uses
