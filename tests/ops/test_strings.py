"""String tensors (dtypes.STRING, ops/strings.py): the ops that move, compare and cast them, the string ops,
their text / ONNX round trips, and the typed refusals (JAX, arithmetic, bad text)."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf

S = gf.TensorSpec


def _s(*words, shape=None):
    out = np.empty(len(words), dtype=object)
    out[:] = list(words)
    return out.reshape(shape if shape is not None else (len(words),))


def _moves(x, y, i):
    a = gf.concat([x, y], 0)                  # (4, 3)
    b = gf.gather(a, i, 0)                    # (2, 3)
    r = gf.reshape(gf.transpose(b, (1, 0)), (6,))
    s = gf.squeeze(gf.unsqueeze(r, 0), (0,))
    sl = s[1:5]
    eq = gf.equal(sl, gf.constant(_s("z", "e", "zz", "f")))
    kept = gf.where(eq, sl, gf.constant(np.array("?", dtype=object)))
    return kept, eq, gf.string_concat(kept, gf.constant(np.array("!", dtype=object)))


X = _s("a", "b", "c", "d", "e", "f", shape=(2, 3))
Y = _s("g", "h", "i", "j", "k", "l", shape=(2, 3))
I = np.array([1, 0])
# by hand: gather rows [d e f], [a b c] -> transposed d a e b f c -> [1:5] = a e b f
WANT = [_s("?", "e", "?", "f"), np.array([False, True, False, True]), _s("?!", "e!", "?!", "f!")]


@pytest.fixture(scope="module")
def moves_graph():
    return gf.trace(_moves, S((2, 3), "string"), S((2, 3), "string"), S((2,), "int64"))


def _check(outs, want=WANT):
    for got, w in zip(outs, want):
        assert got.dtype == w.dtype and got.shape == w.shape, (got, w)
        np.testing.assert_array_equal(got, w)


@pytest.mark.parametrize("backend", ["reference", "onnxruntime"])
def test_strings_move_compare_and_concat(moves_graph, backend):
    _check(gf.run(moves_graph, [X, Y, I], backend=backend))


def test_text_and_onnx_round_trips(moves_graph):
    text = str(moves_graph)
    assert 'tensor<str[4]>["z", "e", "zz", "f"]' in text and "str[2,3]" in text
    parsed = gf.parse(text)
    assert str(parsed) == text
    _check(gf.run(parsed, [X, Y, I], backend="reference"))
    proto = gf.to_onnx(moves_graph)  # string constants become STRING initializers
    assert {n.op_type for n in proto.graph.node} >= {"Equal", "Where", "StringConcat", "GatherND"}
    back = gf.from_onnx(proto)
    assert all(type(v) is str for a in back.params.values() for v in a.flat)
    _check(gf.run(back, [X, Y, I], backend="reference"))


def test_jax_refuses_string_graphs_naming_the_op(moves_graph):
    with pytest.raises(gf.UnsupportedOpError, match="concat.*XLA has no string type") as err:
        gf.run(moves_graph, [X, Y, I], backend="jax")
    assert "concat" in err.value.ops and "onnxruntime" in str(err.value)


def test_onnx_equal_on_strings_needs_opset_19(moves_graph):
    with pytest.raises(gf.UnsupportedOpError, match="opset >= 19"):
        gf.to_onnx(moves_graph, opset=17)


def test_string_inputs_accept_numpy_unicode_and_bytes():
    g = gf.trace(lambda x: gf.string_concat(x, x), S(("n",), "string"))
    for arr in (np.array(["ab", "c"]), np.array([b"ab", b"c"]), _s("ab", "c")):
        out = gf.run(g, [arr])[0]
        assert out.dtype == object and list(out) == ["abab", "cc"]
    with pytest.raises(gf.InputError, match="expects string"):
        gf.run(g, [np.array([1.0, 2.0])])


@pytest.mark.parametrize("op", [lambda x: x + x, lambda x: gf.sum(x, [0]), lambda x: gf.less(x, x),
                                lambda x: gf.pad(x, [1, 1])])
def test_arithmetic_on_strings_is_a_dtype_error(op):
    with pytest.raises(gf.DTypeError, match="does not take string tensors"):
        gf.trace(op, S((2,), "string"))


def test_string_ops_refuse_other_dtypes():
    with pytest.raises(gf.DTypeError, match="string_concat: the first input must be a string tensor"):
        gf.trace(lambda x: gf.string_concat(x, x), S((2,), "float32"))
    with pytest.raises(gf.DTypeError, match="invalid pattern"):
        gf.trace(lambda x: gf.regex_full_match(x, "(a"), S((2,), "string"))
    with pytest.raises(gf.ShapeError, match=r"\[C\] or \[1, C\]"):
        gf.trace(lambda x: gf.string_normalizer(x), S((2, 2), "string"))


def test_cast_between_numbers_and_text():
    g = gf.trace(lambda s, n: (gf.cast(s, "float32"), gf.cast(s, "int64"), gf.cast(n, "string")),
                 S((3,), "string"), S((3,), "int32"))
    f, i, t = gf.run(g, [_s("12", "-7", "0"), np.array([5, -3, 0], np.int32)])
    np.testing.assert_array_equal(f, np.array([12, -7, 0], np.float32))
    np.testing.assert_array_equal(i, [12, -7, 0])
    assert list(t) == ["5", "-3", "0"]
    special = gf.trace(lambda s: gf.cast(s, "float64"), S((4,), "string"))
    out = gf.run(special, [_s("+INF", "-inf", "NaN", "1e-5")])[0]
    assert out[0] == np.inf and out[1] == -np.inf and np.isnan(out[2]) and out[3] == 1e-5
    with pytest.raises(gf.GraphforgeError, match="'hello' is not a number"):
        gf.run(special, [_s("1", "hello", "2", "3")])


def test_normalizer_split_and_regex_through_the_functional_api():
    def f(x):
        kept = gf.string_normalizer(x, case_change_action="UPPER", stopwords=["Monday"])
        pieces, counts = gf.string_split(kept, delimiter="-")
        return kept, pieces, counts, gf.regex_full_match(kept, r"[A-Z]+(-[A-Z]+)?")

    g = gf.trace(f, S(("n",), "string"))
    x = _s("monday", "tue-sday", "fri", "MONDAY")
    for backend in ("reference", "onnxruntime"):
        kept, pieces, counts, match = gf.run(g, [x], backend=backend)
        assert list(kept) == ["TUE-SDAY", "FRI"]
        assert pieces.tolist() == [["TUE", "SDAY"], ["FRI", ""]] and counts.tolist() == [2, 1]
        assert match.tolist() == [True, True]


def test_string_graph_through_the_onnx_backend_adapter_runs_on_the_reference():
    """onnx's backend API (tests/conformance) picks JAX by default; a string graph runs on the reference."""
    import onnx
    from onnx import TensorProto, helper

    from graphforge.runtimes.onnx_backend import GraphforgeBackend

    node = helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action="LOWER", stopwords=[b"b"])
    model = helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.STRING, [3])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, [None])]),
        opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    rep = GraphforgeBackend.prepare(model)
    (out,) = rep.run([_s("A", "B", "C")])
    assert list(out) == ["a", "c"]


_X3 = np.arange(24).reshape(2, 3, 4).astype(str).astype(object)
MOVES = {
    "gather0": lambda x: gf.gather(x, gf.constant(np.array([1, -1])), 0),
    "gather1_2d": lambda x: gf.gather(x, gf.constant(np.array([[2], [0]])), 1),
    "gather_last": lambda x: gf.gather(x, gf.constant(np.array([3, 0, 3])), -1),
    "concat1": lambda x: gf.concat([x, x[:, :1]], 1),
    "split": lambda x: gf.split(x, [1, 3], 2)[1],
    "slice_step": lambda x: x[:, ::-2, 1:],
    "broadcast": lambda x: gf.broadcast_to(x[:1, :1], (3, 2, 3, 4)),
    "where_bcast": lambda x: gf.where(gf.constant(np.array([True, False, True, False])), x,
                                      gf.constant(np.array("-", dtype=object))),
    "flatten_transpose": lambda x: gf.flatten(gf.transpose(x, (2, 0, 1)), 1),
}


@pytest.mark.parametrize("name", sorted(MOVES))
def test_string_moves_agree_on_reference_and_onnxruntime(name):
    g = gf.trace(MOVES[name], S((2, 3, 4), "string"))
    want = gf.run(g, [_X3], backend="reference")[0]
    got = gf.run(g, [_X3], backend="onnxruntime")[0]
    assert want.dtype == got.dtype == object and want.shape == got.shape
    np.testing.assert_array_equal(got, want)


def test_python_text_operands_and_bad_elements():
    g = gf.trace(lambda x: (x == "a", gf.where(x == "b", x, "zz")), S((2,), "string"))
    eq, w = gf.run(g, [_s("a", "b")])
    assert eq.tolist() == [True, False] and w.tolist() == ["zz", "b"]
    with pytest.raises(gf.InputError, match="got a int element"):
        gf.run(g, [np.array([1, "a"], dtype=object)])
