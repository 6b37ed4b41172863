"""The text format of regions: nested blocks after their owner's line, exact round trip (also of
hand-written IR with named values), and ParseError/VerifyError for malformed or ill-scoped regions."""
from __future__ import annotations

import pytest

import graphforge as gf

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
  return %h as h, %ys as ys
}
"""


def test_hand_written_regions_round_trip_and_run():
    g = gf.parse(IR)
    text = str(g)
    assert "    body(%wa: f32[4,4], %ha: f32[4], %xa: f32[4]):" in text
    assert "        then(%" in text and "      yield(%" in text
    assert str(gf.parse(text)) == text
    import numpy as np
    x = np.ones((5, 4), np.float32)
    w = np.eye(4, dtype=np.float32) * 0.5
    a = gf.run(g, [x, w])
    b = gf.run(gf.parse(text), [x, w], backend="jax")
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-6)


@pytest.mark.parametrize("mutate,message", [
    (lambda t: t.replace("      yield(%3, %1) @rnn (m.py:5)\n", ""), "ends without 'yield"),
    (lambda t: t.replace("  return %h", "  yield(%h)\n  return %h"), "outside a region"),
    (lambda t: t.replace("  %h0: f32[4]", "  orphan(%q: f32[]):\n  %h0: f32[4]"), "follows no node"),
])
def test_malformed_regions_are_parse_errors(mutate, message):
    bad = mutate(IR)
    assert bad != IR
    with pytest.raises(gf.ParseError, match=message):
        gf.parse(bad)


def test_an_implicit_capture_is_a_verify_error_naming_value_and_node():
    bad = IR.replace("%0: f32[4] = matmul(%ha, %wa)", "%0: f32[4] = matmul(%ha, %w)")
    with pytest.raises(gf.VerifyError, match=r"node 0 \(matmul @rnn\): input 1 reads %w.*implicit capture"):
        gf.parse(bad)
    g = gf.parse(bad, verify=False)
    assert [n.op for n in g.walk()].count("yield") == 3


def test_region_values_do_not_leak_out():
    bad = IR.replace("return %h as h, %ys as ys", "return %h as h, %1 as ys")
    with pytest.raises((gf.ParseError, gf.VerifyError)):
        gf.parse(bad)


def test_branch_type_mismatch_is_a_verify_error():
    bad = IR.replace("          yield(%6)", "          %7: f32[] = sum(%6) {axes=none, keepdims=false}\n          yield(%7)")
    with pytest.raises(gf.VerifyError, match="else branch"):
        gf.parse(bad)


def test_deeply_nested_regions_are_a_parse_error_not_a_recursion_error():
    from graphforge.ir.parser import MAX_REGION_DEPTH

    depth = MAX_REGION_DEPTH + 5
    lines = ["graph deep(%p: bool[], %x: f32[2]) {"]
    indent = "  "
    lines.append(f"{indent}%r0: f32[2] = cond(%p, %x)")
    for k in range(depth):
        lines.append(f"{indent}  then(%a{k}: f32[2]):")
        indent += "    "
        lines.append(f"{indent}%r{k + 1}: f32[2] = cond(%p, %a{k})")
    text = "\n".join(lines) + "\n"
    with pytest.raises(gf.ParseError, match="nested deeper"):
        gf.parse(text)
