"""Dim expressions: canonical spelling, arithmetic, evaluation, binding and the text IR."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import graphforge as gf
from graphforge.errors import ParseError, ShapeError
from graphforge.ir.dims import (check_dim, collect_requirements, dim_add, dim_ceildiv, dim_divide, dim_floordiv,
                                dim_le, dim_max, dim_min, dim_mod, dim_mul, dim_product, dim_sub, dim_symbols,
                                dim_tree, require_divisible, require_le, resolve_dim, unify_dims)
from graphforge.ir.types import TensorType


@pytest.mark.parametrize("text, canonical", [
    ("seq - 1", "seq-1"), ("-1 + seq", "seq-1"), ("2*seq", "2*seq"), ("seq*2", "2*seq"),
    ("heads*batch", "batch*heads"), ("batch * heads", "batch*heads"), ("ceil(seq/2)", "floor((seq+1)/2)"),
    ("(seq+1)//2", "floor((seq+1)/2)"), ("(seq-1)//2", "floor((seq+1)/2)-1"), ("max(b, a)", "max(a,b)"),
    ("64 - seq", "64-seq"), ("seq + seq", "2*seq"), ("seq - seq + 3", 3), ("floor((2*seq)/2)", "seq"),
    ("max(seq, seq-1)", "seq"), ("min(seq, seq+2)", "seq"), ("max(a, max(b, a))", "max(a,b)"),
    ("4*batch", "4*batch"), ("batch", "batch"),
])
def test_canonical_spelling(text, canonical):
    assert check_dim(text) == canonical
    if isinstance(canonical, str):
        assert check_dim(canonical) == canonical  # canonical text is a fixed point


def test_equal_expressions_compare_and_hash_equal():
    a = dim_add(dim_mul("seq", 2), -2)
    b = dim_mul(dim_sub("seq", 1), 2)
    assert a == b == "2*seq-2" and hash(a) == hash(b)
    assert TensorType(("batch", a), "float32") == TensorType(("batch", b), "float32")
    assert str(TensorType(("batch", dim_sub("seq", 1), 64), "float32")) == "f32[batch,seq-1,64]"


def test_arithmetic_and_evaluation_agree_with_python():
    exprs = ["seq-1", "2*seq+3", "floor((seq+1)/2)", "max(a,seq)", "min(a,seq-1)", "a*seq", "seq-4*floor(seq/4)"]
    for seq, a in itertools.product(range(1, 9), range(0, 5)):
        env = {"seq": seq, "a": a}
        want = [seq - 1, 2 * seq + 3, -(-seq // 2), max(a, seq), min(a, seq - 1), a * seq, seq % 4]
        assert [resolve_dim(check_dim(e), env) for e in exprs] == want
        assert resolve_dim(dim_floordiv(dim_sub("seq", 1), 3), env) == (seq - 1) // 3
        assert resolve_dim(dim_ceildiv("seq", 3), env) == -(-seq // 3)
        assert resolve_dim(dim_mod("seq", 3), env) == seq % 3


def test_products_and_exact_division():
    assert dim_product([4, "batch", 2]) == "8*batch" and dim_product([]) == 1 and dim_product([2, 3]) == 6
    assert dim_divide("4*batch*seq", "2*batch") == "2*seq"
    assert dim_divide("batch*seq+batch", "batch") == "seq+1"
    assert dim_divide("batch*seq", 4) is None and dim_divide(12, 5) is None and dim_divide(12, 4) == 3
    assert dim_symbols("max(floor(x/2),y)+z") == {"x", "y", "z"}


def test_static_comparison():
    assert dim_le("seq-1", "seq") is True and dim_le("seq+1", "seq") is False
    assert dim_le("seq", 64) is None and dim_le(3, 4) is True
    assert dim_max("a", "b") == "max(a,b)" and dim_max(3, 5) == 5 and dim_min("seq", "seq+2") == "seq"


def test_unify_binds_linear_symbols():
    env: dict = {}
    assert unify_dims("seq+1", 5, env) and env == {"seq": 4}
    assert unify_dims("4*batch", 12, env) and env["batch"] == 3
    assert not unify_dims("4*batch", 13, {})
    assert not unify_dims("seq+1", 0, {})  # would bind seq = -1
    assert unify_dims("2*seq-1", 7, {"seq": 4}) and not unify_dims("2*seq-1", 8, {"seq": 4})


def test_tree_for_run_time_evaluation():
    assert dim_tree(7) == ("int", 7)
    assert dim_tree("2*seq-1") == ("add", [("mul", [("sym", "seq"), ("int", 2)]), ("int", -1)])
    assert dim_tree("floor(seq/2)") == ("floordiv", ("sym", "seq"), 2)


def test_malformed_dims_are_shape_errors():
    for bad in ("seq +", "max(", "seq/2", "floor(seq/0)", "seq**2", "3-5"):
        with pytest.raises(ShapeError):
            check_dim(bad)


def test_requirements_are_recorded_proved_or_refused():
    with collect_requirements() as reqs:
        require_le("seq", 64, "slice of a 64-row table")
        require_le("seq-1", "seq", "provable")
        require_divisible("seq", 4, "reshape by 4")
        require_divisible("4*seq", 2, "provable")
    assert [str(r) for r in reqs] == ["seq <= 64", "seq % 4 == 0"]
    assert reqs[0].holds({"seq": 64}) and not reqs[0].holds({"seq": 65})
    with pytest.raises(ShapeError, match="never holds"):
        require_le("seq+1", "seq", "impossible")
    require_le("seq", 64, "outside a collection nothing is recorded")


def test_text_ir_round_trips_expressions():
    g = gf.parse("""graph g(%x: f32[batch,seq]) {
  %0: f32[batch,seq-1] = slice(%x) {axes=[1], ends=[seq-1], starts=[0]}
  %1: f32[batch,floor(seq/2),2] = reshape(%0) {shape=[batch, floor(seq/2), 2]}
  %2: f32[max(a,batch)] = broadcast_to(%x) {shape=[max(a,batch)]}
  return %1
}""", verify=False)
    text = str(g)
    assert "f32[batch,floor(seq/2),2]" in text and "shape=[batch, floor(seq/2), 2]" in text
    assert "f32[max(a,batch)]" in text and "ends=[seq-1]" in text
    assert str(gf.parse(text, verify=False)) == text
    assert g.nodes[1].attrs["shape"] == ["batch", "floor(seq/2)", 2]


def test_text_ir_reports_a_malformed_dim():
    with pytest.raises(ParseError, match="line 1"):
        gf.parse("graph g(%x: f32[batch,seq+]) {\n  return %x\n}")


def test_type_construction_fast_path_stays_cheap():
    # Type rules build most types from ints and symbols seen before; expressions are parsed once.
    import time
    dims = ("batch", 128, "seq-1")
    TensorType(dims, "float32")
    t0 = time.perf_counter()
    for _ in range(20000):
        TensorType(dims, "float32")
    assert time.perf_counter() - t0 < 1.0
    assert np.prod([resolve_dim(d, {"batch": 2, "seq": 5}) for d in dims]) == 2 * 128 * 4


def test_le_uses_the_bounds_of_a_floor():
    """``k*floor(N/k)`` lies in ``[N-k+1, N]``: the row counts a strided conv's gradient compares
    (``h <= 2*floor((h+1)/2)+1``) are proved, so they record no guard; what needs a size still does."""
    from graphforge.ir.dims import dim_le

    assert dim_le("h", "2*floor((h+1)/2)+1") is True
    assert dim_le("2*floor((h+1)/2)-1", "h+2") is True
    assert dim_le("3*floor(w/3)", "w") is True
    assert dim_le("h+2", "2*floor((h+1)/2)") is False
    assert dim_le(1, "floor((h+1)/2)") is None        # h = 0 breaks it: still a guard
    assert dim_le("w", "3*floor(w/3)") is None
