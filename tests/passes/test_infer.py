"""infer: type rules re-checked, default attributes filled."""
import pytest

import graphforge as gf
from graphforge.errors import PassError
from graphforge.passes import optimize
from passtest import check_pass


def test_fills_default_attributes():
    check_pass("""
graph g(%x: f32[2,3]) {
  %a: f32[2] = sum(%x) {axes=[1]}
  %b: f32[3,2] = transpose(%x)
  return %a as a, %b as b
}""", "infer", """
graph g(%x: f32[2,3]) {
  %a: f32[2] = sum(%x) {axes=[1], keepdims=false}
  %b: f32[3,2] = transpose(%x) {perm=none}
  return %a as a, %b as b
}""", equivalent=False)


def test_wrong_declared_type_names_the_node():
    g = gf.parse("""
graph g(%x: f32[2,3]) {
  %a: f32[3] = sum(%x) {axes=[1], keepdims=false} @enc.layer (model.py:7)
  return %a as a
}""", verify=False)
    with pytest.raises(PassError) as err:
        optimize(g, "infer")
    msg = str(err.value)
    assert "enc.layer" in msg and "sum" in msg and "model.py:7" in msg and "f32[2]" in msg and "'infer'" in msg


def test_traced_graphs_are_unchanged():
    g = gf.trace(lambda x: gf.softmax(x * 2.0), gf.TensorSpec(("batch", 4), "float32"))
    check_pass(str(g), "infer", str(g))
