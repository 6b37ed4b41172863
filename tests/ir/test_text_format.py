"""The stable text format: exact round trips for traced models, and ParseErrors (with line and
column) for malformed text."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge.errors import ParseError, VerifyError
from gf_testutil import zip_outputs


def round_trip(g: gf.Graph) -> gf.Graph:
    text = str(g)
    parsed = gf.parse(text, params=g.params)
    assert str(parsed) == text
    return parsed


def check_same_values(g, parsed, inputs):
    for a, b in zip_outputs(gf.run(g, inputs), gf.run(parsed, inputs)):
        np.testing.assert_array_equal(a, b)


def test_mlp_module_round_trip(mlp_module, rng):
    g = gf.trace(mlp_module, gf.TensorSpec(("batch", 6), "float32"), seed=0)
    text = str(g)
    assert "graph _mlp(%x: f32[batch,6]) {" in text
    assert "param %layer1.weight: f32[8,6]" in text
    assert "@layer1 (test_text_format.py:" not in text  # the module's own line, in conftest.py
    assert "@layer1 (conftest.py:" in text
    parsed = round_trip(g)
    check_same_values(g, parsed, [rng.standard_normal((3, 6)).astype(np.float32)])


def test_mlp_seq_round_trip(mlp_seq, rng):
    g = gf.trace(mlp_seq, gf.TensorSpec(("batch", 6), "float32"), seed=0)
    assert "@0 " in str(g) and "@2 " in str(g)
    check_same_values(g, round_trip(g), [rng.standard_normal((2, 6)).astype(np.float32)])


def test_several_inputs_and_outputs_round_trip(rng):
    def f(a, b, mask):
        s = a @ b
        return {"sum": s.sum(-1), "where": gf.where(mask, s, 0.0), "max": gf.maximum(a, 0.5).max(0)}

    g = gf.trace(f, gf.TensorSpec(("n", 3), "float32"), gf.TensorSpec((3, 4), "float32"),
                 gf.TensorSpec(("n", 4), "bool"))
    assert g.output_names == ["sum", "where", "max"]
    inputs = [rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32),
              rng.random((2, 4)) > 0.5]
    check_same_values(g, round_trip(g), inputs)


def test_indexing_and_symbolic_reshape_round_trip(rng):
    def f(x):
        y = x[:, 1:3, ::-1]
        z = x.reshape(x.shape[0], -1)  # symbolic batch, static rest
        w = z.reshape(-1, 4)  # a product dim: 6*batch
        return y[..., 0], z[None], w[:, ::2], x[:, [2, 0]]

    g = gf.trace(f, gf.TensorSpec(("batch", 4, 6), "float32"))
    assert "f32[6*batch,4]" in str(g)
    x = rng.standard_normal((2, 4, 6)).astype(np.float32)
    parsed = round_trip(g)
    check_same_values(g, parsed, [x])
    y0, z, w, gathered = gf.run(parsed, [x])
    np.testing.assert_array_equal(y0, x[:, 1:3, ::-1][..., 0])
    np.testing.assert_array_equal(z, x.reshape(2, -1)[None])
    np.testing.assert_array_equal(w, x.reshape(-1, 4)[:, ::2])
    np.testing.assert_array_equal(gathered, x[:, [2, 0]])


def test_attribute_values_round_trip():
    consts = [np.array([1.5, -0.0, np.inf, -np.inf, np.nan], np.float32), np.array([[1, -2]], np.int64),
              np.array([True, False]), np.array(0.1, dtype=gf.dtypes.to_numpy_dtype("bfloat16")),
              np.array([65504.0, 1e-3], np.float16), np.array([4294967295], np.uint32), np.zeros((0, 2), np.float32),
              np.array([1e-45, 3.4028235e38], np.float32)]

    def f(x):
        outs = [gf.constant(c, gf.dtypes.from_numpy_dtype(c.dtype)) for c in consts]
        outs.append(gf.leaky_relu(x, 1e-5))
        outs.append(gf.pad(x, [1, 0], value=-2.5))
        outs.append(gf.clip(x, min=None, max=0.25))
        outs.append(gf.gelu(x, "tanh"))
        return tuple(outs)

    g = gf.trace(f, gf.TensorSpec((3,), "float32"))
    parsed = round_trip(g)
    outs = gf.run(parsed, [np.ones(3, np.float32)])
    assert len(outs) == len(consts) + 4
    for out, c in zip_outputs(outs[:len(consts)], consts):  # the constants; the other four are computed
        assert out.dtype == c.dtype
        assert out.shape == c.shape and out.tobytes() == c.tobytes()  # bit-exact


def test_names_that_need_quoting_round_trip():
    g = gf.trace(lambda x: {"logits out": x * 2.0, "p-1": x}, gf.TensorSpec((2,), "float32"), name="my model")
    parsed = round_trip(g)
    assert parsed.name == "my model" and parsed.output_names == ["logits out", "p-1"]


def test_state_update_and_gradient_output_names_round_trip(mlp_graph):
    gg = gf.grad(gf.trace(lambda x: gf.sum(gf.tanh(x)), gf.TensorSpec((2,), "float32")), wrt=["x"], optimize=False)
    assert round_trip(gg).output_names == ["output", "grad:x"]


def test_parse_with_params_and_kinds():
    text = """
# a comment line
graph g(%x: f32[2]) {
  param %w: f32[2]
  buffer %b: f32[2]
  %0: f32[2] = mul(%x, %w) @enc.layers.0 (model.py:3)
  %y: f32[2] = add(%0, %b) @enc (model.py:4;fused.py:9)
  return %y as out
}
"""
    g = gf.parse(text, params={"w": np.full(2, 2.0, np.float32), "b": np.ones(2, np.float32)})
    assert g.trainable_names == ["w"] and g.param_values["b"].kind == "buffer"
    assert g.nodes[1].loc == "model.py:4;fused.py:9" and g.nodes[0].scope == "enc.layers.0"
    np.testing.assert_array_equal(gf.run(g, [np.ones(2, np.float32)])[0], [3.0, 3.0])
    with pytest.raises(ParseError, match="does not declare: nope"):
        gf.parse(text, params={"nope": np.zeros(1)})


GOOD = """graph g(%x: f32[2,3]) {
  %0: f32[2,3] = relu(%x)
  return %0 as out
}"""

MALFORMED = {
    "empty": ("", None),
    "no header": ("%0: f32[2] = relu(%x)\n}", 1),
    "unclosed header": ("graph g(%x: f32[2,3] {\n  return %x as out\n}", 1),
    "input without type": ("graph g(%x) {\n  return %x as out\n}", 1),
    "bad dtype": ("graph g(%x: f33[2]) {\n  return %x as out\n}", 1),
    "bad dim": ("graph g(%x: f32[2,1.5]) {\n  return %x as out\n}", 1),
    "negative dim": ("graph g(%x: f32[-2]) {\n  return %x as out\n}", 1),
    "duplicate input": ("graph g(%x: f32[2], %x: f32[2]) {\n  return %x as out\n}", 1),
    "undefined value": (GOOD.replace("relu(%x)", "relu(%y)"), 2),
    "missing =": (GOOD.replace(" = relu", " relu"), 2),
    "unclosed call": (GOOD.replace("relu(%x)", "relu(%x"), 2),
    "bad attr value": (GOOD.replace("relu(%x)", "leaky_relu(%x) {alpha=}"), 2),
    "unterminated string": (GOOD.replace("relu(%x)", 'gelu(%x) {approximate="tanh}'), 2),
    "bad string escape": (GOOD.replace("relu(%x)", 'gelu(%x) {approximate="\\q"}'), 2),
    "duplicate attr": (GOOD.replace("relu(%x)", "leaky_relu(%x) {alpha=0.1, alpha=0.2}"), 2),
    "tensor literal size": (GOOD.replace("%0: f32[2,3] = relu(%x)", "%0: f32[2] = constant() {value=tensor<f32[2]>[1.0]}"), 2),
    "tensor literal kind": (GOOD.replace("%0: f32[2,3] = relu(%x)", 'constant() {value=tensor<f32[1]>["a"]}'), 2),
    "tensor literal overflow": (GOOD.replace("%0: f32[2,3] = relu(%x)", "%0: i8[1] = constant() {value=tensor<i8[1]>[1000]}"), 2),
    "huge float literal": (GOOD.replace("%0: f32[2,3] = relu(%x)", "%0: f32[1] = constant() {value=tensor<f32[1]>[" + "9" * 400 + "]}"), 2),
    "symbolic tensor literal": (GOOD.replace("%0: f32[2,3] = relu(%x)", "%0: f32[n] = constant() {value=tensor<f32[n]>[1.0]}"), 2),
    "redefinition": (GOOD.replace("%0: f32[2,3] = relu(%x)", "%x: f32[2,3] = relu(%x)"), 2),
    "trailing junk": (GOOD.replace("relu(%x)", "relu(%x) ???"), 2),
    "unterminated loc": (GOOD.replace("relu(%x)", "relu(%x) @s (file.py:3"), 2),
    "missing close": (GOOD[:-1], 3),
    "text after close": (GOOD + "\n  %1: f32[2,3] = relu(%x)", 5),
    "return undefined": (GOOD.replace("return %0", "return %9"), 3),
    "param twice": (GOOD.replace("{\n", "{\n  param %w: f32[2]\n  param %w: f32[2]\n", 1), 3),
    "param bad type": (GOOD.replace("{\n", "{\n  param %w: f32(2)\n", 1), 2),
    "not text": (b"graph", None),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_text_is_a_parse_error(case):
    text, line = MALFORMED[case]
    with pytest.raises(ParseError) as err:
        gf.parse(text)
    if line is not None:
        assert f"line {line}" in str(err.value)


def test_parse_errors_point_at_the_column():
    with pytest.raises(ParseError) as err:
        gf.parse(GOOD.replace("relu(%x)", "relu(%x, %y)"))
    msg = str(err.value)
    assert "line 2, column" in msg and "undefined value %y" in msg
    caret_line = msg.splitlines()[-1]
    assert caret_line.strip() == "^"


@pytest.mark.parametrize("text,match", [
    (GOOD.replace("%0: f32[2,3] = relu", "%0: f32[3,2] = relu"), "declared result types"),
    (GOOD.replace("relu(%x)", "frobnicate(%x)"), "unknown op"),
    (GOOD.replace("relu(%x)", "relu(%x) {alpha=1.0}"), "unknown attribute"),
    (GOOD.replace("return %0 as out", "return %0 as out, %x as out"), "duplicate output names"),
])
def test_well_formed_but_inconsistent_text_fails_verification(text, match):
    with pytest.raises(VerifyError, match=match):
        gf.parse(text)
    gf.parse(text, verify=False)  # still readable for passes that repair graphs


def test_mutated_text_never_raises_a_foreign_exception(mlp_graph):
    """Deleting or duplicating any single character of a valid IR text gives a graph or a
    graphforge error, never a KeyError/ValueError/IndexError."""
    text = str(gf.trace(lambda x: (gf.pad(x, [0, 0, 1, 1], value=0.5) * 2.0, gf.constant(np.arange(3)),
                                   x[None, :, ::-1], gf.gelu(x, "tanh")), gf.TensorSpec(("n", 3), "float32")))
    rng = np.random.default_rng(0)
    positions = rng.choice(len(text), size=min(len(text), 250), replace=False)
    for p in positions:
        for mutated in (text[:p] + text[p + 1:], text[:p] + text[p] + text[p:], text[:p] + "]" + text[p + 1:]):
            try:
                gf.parse(mutated)
            except gf.GraphforgeError:
                pass


@pytest.mark.parametrize("text,match", [
    (GOOD + "", None),
    (GOOD.replace("return %0 as out", "return %0 as out\n  return %x as x"), "second 'return'"),
    (GOOD.replace("graph g(%x: f32[2,3])", "graph g(%0: f32[2,3])").replace("(%x)", "(%0)").replace("%0: f32[2,3] =", "%y: f32[2,3] ="), "invalid value name"),
    (GOOD.replace("{\n", "{\n  param %1: f32[2]\n", 1), "invalid value name"),
])
def test_more_parse_errors(text, match):
    if match is None:
        gf.parse(text)
        return
    with pytest.raises(ParseError, match=match):
        gf.parse(text)


def test_list_attribute_strings_that_look_like_literals_round_trip():
    from graphforge.ir.parser import _Cursor, _read_value
    from graphforge.ir.printer import format_attr_value

    value = ["batch", "none", "true", "inf", "two words", "4*n", 3, -1.5, [True, None]]
    text = format_attr_value(value)
    assert _read_value(_Cursor(text, 1)) == value


def test_unnamed_outputs_get_the_default_names():
    g = gf.parse("graph g(%x: f32[2]) {\n  %0: f32[2] = exp(%x)\n  return %0, %x\n}")
    assert g.output_names == ["output", "output1"]
