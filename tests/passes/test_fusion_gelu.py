"""fusion/gelu: the erf and tanh spellings of GELU → gelu."""
import math

import pytest

import graphforge as gf
from graphforge.passes import fusion, optimize
from passtest import assert_equivalent, assert_idempotent, check_pass

SPELLINGS = {
    "half_x_erf_div": lambda x: 0.5 * x * (1 + gf.erf(x / math.sqrt(2))),
    "x_half_erf_mul": lambda x: x * 0.5 * (1.0 + gf.erf(x * 0.7071067811865476)),
    "nested": lambda x: x * (0.5 * (gf.erf(0.70710678 * x) + 1)),
    "over_two": lambda x: x * (1 + gf.erf(x / 1.41421356)) / 2,
    "tanh_pow": lambda x: 0.5 * x * (1 + gf.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
    "tanh_cube": lambda x: x * (1 + gf.tanh(0.7978845608 * (x + 0.044715 * x * x * x))) * 0.5,
}


@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_spellings_fuse_to_one_gelu(name):
    def model(x):
        return gf.exp(SPELLINGS[name](gf.tanh(x)))
    g = gf.trace(model, gf.TensorSpec(("batch", 6), "float32"))
    out = optimize(g, "default", verify=True)
    approx = "tanh" if name.startswith("tanh") else "none"
    assert out.op_counts() == {"exp": 1, "gelu": 1, "tanh": 1}, str(out)
    gelu = [n for n in out.nodes if n.op == "gelu"][0]
    assert gelu.attrs["approximate"] == approx
    assert_equivalent(g, out, rtol=1e-5, atol=1e-6)
    assert_idempotent(out, "default")


def test_ir_text_and_provenance():
    check_pass("""
graph g(%x: f32[batch,4]) {
  %half: f32[] = constant() {value=tensor<f32[]>[0.5]} @ffn (f.py:3)
  %r2: f32[] = constant() {value=tensor<f32[]>[1.4142135]} @ffn (f.py:3)
  %one: f32[] = constant() {value=tensor<f32[]>[1.0]} @ffn (f.py:3)
  %a: f32[batch,4] = mul(%x, %half) @ffn (f.py:3)
  %b: f32[batch,4] = div(%x, %r2) @ffn (f.py:4)
  %c: f32[batch,4] = erf(%b) @ffn (f.py:4)
  %d: f32[batch,4] = add(%c, %one) @ffn (f.py:4)
  %e: f32[batch,4] = mul(%a, %d) @ffn (f.py:5)
  return %e as out
}""", "fuse,dce", """
graph g(%x: f32[batch,4]) {
  %0: f32[batch,4] = gelu(%x) {approximate="none"} @ffn (f.py:3;f.py:4;f.py:5)
  return %0 as out
}""")


def test_wrong_constants_or_other_input_do_not_fuse():
    for fn in (lambda x, y: 0.5 * x * (1 + gf.erf(x / 1.5)),
               lambda x, y: 0.4 * x * (1 + gf.erf(x / math.sqrt(2))),
               lambda x, y: 0.5 * y * (1 + gf.erf(x / math.sqrt(2)))):
        g = gf.trace(fn, gf.TensorSpec((3,), "float32"), gf.TensorSpec((3,), "float32"))
        reports = []
        out = optimize(g, "fuse", verify=True, report=reports.append)
        assert "gelu" not in out.op_counts() and "gelu" not in reports[0].stats()


def test_shared_intermediate_blocks_fusion():
    def fn(x):
        e = gf.erf(x / math.sqrt(2))
        return 0.5 * x * (1 + e) + e
    g = gf.trace(fn, gf.TensorSpec((3,), "float32"))
    assert "gelu" not in optimize(g, "fuse").op_counts()
