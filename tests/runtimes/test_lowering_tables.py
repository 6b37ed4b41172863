"""Each composite formula exists once: ``linear(activation=a)`` lowers through the activation op's own
lowering on both back ends, and ``layer_norm`` reaches a back end without a native lowering as its
registry decomposition, applied by the ``decompose`` pass before lowering (never inside a back end)."""
from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("jax")

import graphforge as gf  # noqa: E402
from graphforge.ops.linalg import ACTIVATION_OPS, activation_name, activation_op  # noqa: E402
from graphforge.runtimes import jax as gf_jax  # noqa: E402
from graphforge.errors import ShapeError, UnsupportedOpError  # noqa: E402
from graphforge.ops.registry import OpDef, register_op, unregister_op  # noqa: E402
from graphforge.runtimes import onnx as gf_onnx  # noqa: E402
from graphforge.trace.tensor import apply  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
ACTS = sorted(ACTIVATION_OPS)


def _linear_graph(act: str, dtype: str = "float32", rank: int = 2, bias: bool = True) -> gf.Graph:
    shape = ("batch", 4) if rank == 2 else ("batch", 3, 4)
    specs = [gf.TensorSpec(shape, dtype, name="x"), gf.TensorSpec((5, 4), dtype, name="w")]
    if bias:
        specs.append(gf.TensorSpec((5,), dtype, name="b"))
    return gf.trace(lambda *a: gf.linear(*a, activation=act), *specs)


def _activation_graph(act: str, dtype: str = "float32") -> gf.Graph:
    op, attrs = ACTIVATION_OPS[act]
    return gf.trace(lambda y: apply(op, y, **attrs), gf.TensorSpec(("batch", 5), dtype, name="y"))


def _op_types(graph, **options) -> list[str]:
    return [n.op_type for n in gf.to_onnx(graph, **options).graph.node]


def _inputs(graph, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for v in graph.inputs:
        shape = [2 if isinstance(d, str) else d for d in v.type.shape]
        out.append(rng.standard_normal(shape).astype(v.type.dtype))
    return out


# ---- the fused-activation table ---------------------------------------------------------------------

def test_the_activation_table_round_trips():
    for act in ACTS:
        op, attrs = activation_op(act)
        assert activation_name(op, attrs) == act
    assert activation_op("none") is None
    assert activation_name("exp", {}) is None
    with pytest.raises(gf.GraphforgeError, match="unknown activation 'swish'"):
        activation_op("swish")


@pytest.mark.parametrize("native", [None, False], ids=["native-default", "decomposed"])
@pytest.mark.parametrize("act", ACTS)
def test_onnx_linear_activation_is_the_activation_ops_lowering(act, native):
    # Gemm (rank 2, float) then exactly the nodes the activation op alone exports to
    lin = _op_types(_linear_graph(act), native_ops=native)
    alone = _op_types(_activation_graph(act), native_ops=native)
    assert lin == ["Gemm"] + alone
    # float64 rank 3 (w an input, so transposed at run time): MatMul + Add, then the float64 spelling
    lin64 = _op_types(_linear_graph(act, "float64", rank=3), native_ops=native)
    alone64 = _op_types(_activation_graph(act, "float64"), native_ops=native)
    assert lin64[-len(alone64):] == alone64 and lin64[:-len(alone64)] == ["Transpose", "MatMul", "Add"]


@pytest.mark.parametrize("act", ACTS)
def test_jax_linear_activation_calls_the_activation_ops_lowering(act, monkeypatch):
    op, attrs = ACTIVATION_OPS[act]
    original = gf_jax.LOWERINGS[op]
    calls = []

    def spy(ctx, args, a):
        calls.append((ctx.node.op, dict(a)))
        return original(ctx, args, a)

    monkeypatch.setitem(gf_jax.LOWERINGS, op, spy)
    g = _linear_graph(act)
    xs = _inputs(g)
    got = gf.run(g, xs, backend="jax")[0]
    assert calls == [(op, attrs)]
    np.testing.assert_allclose(got, gf.run(g, xs)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("act", ACTS)
def test_linear_activation_agrees_on_every_back_end(act):
    g = _linear_graph(act, "float64", rank=3, bias=False)
    xs = _inputs(g, seed=1)
    ref = gf.run(g, xs)[0]
    for backend in ("jax", "onnxruntime"):
        np.testing.assert_allclose(gf.run(g, xs, backend=backend)[0], ref, rtol=1e-10, atol=1e-12)


# ---- layer_norm: native where a back end has it, else the registry decomposition -------------------

def _layer_norm_graph(dtype="float32", affine=True, seq="seq"):
    specs = [gf.TensorSpec(("batch", seq, 6), dtype, name="x")]
    if affine:
        specs += [gf.TensorSpec((6,), dtype, name="s"), gf.TensorSpec((6,), dtype, name="b")]
    return gf.trace(lambda x, *sb: gf.layer_norm(x, -1, *sb), *specs)


def test_jax_has_no_layer_norm_of_its_own():
    assert not gf_jax.has_lowering("layer_norm")
    assert "layer_norm" not in gf_jax.missing_lowerings()  # covered by its decomposition
    g = _layer_norm_graph()
    work, _ = gf_jax.decomposed(g)
    assert work is not g and "layer_norm" not in {n.op for n in work.nodes}
    assert [n.op for n in g.nodes] == ["layer_norm"]  # the caller's graph is untouched
    decomposed_ops = {n.op for n in gf.optimize(g, "decompose").nodes}
    assert {n.op for n in work.nodes} == decomposed_ops


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_layer_norm_runs_the_same_on_every_back_end(dtype):
    g = _layer_norm_graph(dtype)
    xs = _inputs(g, seed=2)
    ref = gf.run(g, xs)[0].astype(np.float64)
    tol = {"float32": 1e-5, "float64": 1e-12, "float16": 2e-3}[dtype]
    for backend, options in (("jax", {}), ("onnxruntime", {}), ("onnxruntime", {"native_ops": False})):
        got = gf.run(g, xs, backend=backend, **options)[0]
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got.astype(np.float64), ref, rtol=tol, atol=tol)


def test_onnx_layer_norm_is_native_or_exactly_its_decomposition():
    g = _layer_norm_graph()
    assert _op_types(g) == ["LayerNormalization"]
    decomposed = gf.optimize(g, "decompose")
    assert _op_types(g, native_ops=False) == _op_types(decomposed, native_ops=False)
    # float64: onnxruntime's kernel is not accurate enough, so the decomposition again
    g64 = _layer_norm_graph("float64")
    assert _op_types(g64) == _op_types(gf.optimize(g64, "decompose"))
    # no scale and a symbolic normalised shape: the ones it would need have no static shape
    g_sym = gf.trace(lambda x: gf.layer_norm(x, 1), gf.TensorSpec(("batch", "seq", 6), "float32", name="x"))
    assert "LayerNormalization" not in _op_types(g_sym)


def test_the_export_decomposes_a_copy_and_keeps_provenance():
    g = _layer_norm_graph()
    before = str(g)
    proto = gf.to_onnx(g, native_ops=False)
    assert str(g) == before
    node = g.nodes[0]
    assert all(n.doc_string.endswith(node.loc) for n in proto.graph.node if n.op_type != "Constant")


def test_no_back_end_decomposes_inside_itself():
    """The exporter and the emitter no longer re-enter the tracer: no ``decompose``/``decomposer``
    in the ONNX back end, no ``Builder`` in any lowering module, no activation table in runtimes/."""
    for path in sorted((ROOT / "runtimes" / "onnx").glob("*.py")) + sorted((ROOT / "runtimes" / "jax").glob("*.py")):
        tree = ast.parse(path.read_text())
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert not {"decomposer", "Builder"} & names, path
        # asking whether an op has a decomposition is fine; calling one is the pass's job
        assert not any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "decompose"
                       for n in ast.walk(tree)), path


@pytest.fixture
def picky_op():
    """An op with no lowering anywhere whose decomposition refuses a symbolic batch."""
    def decompose(inputs, attrs):
        x = inputs[0]
        if not isinstance(x.shape[0], int):
            raise ShapeError("picky_double needs a static batch")
        return [x + x]

    register_op(OpDef(name="picky_double", type_rule=lambda ts, a: [ts[0]],
                      reference=lambda xs, a, env=None: [xs[0] * 2], vjp=None, decompose=decompose))
    yield "picky_double"
    unregister_op("picky_double")


def test_a_decomposition_that_does_not_apply_is_named_by_the_back_end(picky_op):
    static = gf.trace(lambda x: apply(picky_op, x), gf.TensorSpec((2, 3), "float32", name="x"))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for backend in ("jax", "onnxruntime"):
        np.testing.assert_array_equal(gf.run(static, x, backend=backend)[0], 2 * x)
    symbolic = gf.trace(lambda x: apply(picky_op, x), gf.TensorSpec(("batch", 3), "float32", name="x"))
    with pytest.raises(UnsupportedOpError, match="picky_double needs a static batch"):
        gf.to_onnx(symbolic)
    with pytest.raises(UnsupportedOpError, match="picky_double needs a static batch"):
        gf.run(symbolic, x, backend="jax")


# The fusion rule that builds linear(activation=...) still maps ops to names itself; it belongs to
# passes/ and should switch to ops.linalg.activation_name (then drop it from this list).
_SECOND_ACTIVATION_TABLE_ALLOWED: set[str] = set()


def test_the_activation_values_are_spelled_in_one_table():
    """``"gelu_tanh"`` (the one activation value that is not an op name) is written as code only in
    graphforge/ops/linalg.py; any other table of linear's activations would have to spell it too."""
    spelled = []
    for top in ("graphforge", "passes", "runtimes"):
        for path in sorted((ROOT / top).rglob("*.py")):
            text = path.read_text()
            if "gelu_tanh" not in text:  # only a file that spells it can hold such a constant: parse only those
                continue
            tree = ast.parse(text)
            docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                          if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                          and isinstance(n.body[0], ast.Expr)}
            if any(isinstance(n, ast.Constant) and n.value == "gelu_tanh" and id(n) not in docstrings
                   for n in ast.walk(tree)):
                spelled.append(str(path.relative_to(ROOT)))
    assert set(spelled) - _SECOND_ACTIVATION_TABLE_ALLOWED == {"graphforge/ops/linalg.py"}


def test_the_layer_norm_formula_is_one_function():
    """Outside the NumPy reference, normalising (mean, centre, variance, rsqrt) is written once:
    ``nn_norm.normalize``. A module that reduces with ``mean`` and applies ``rsqrt`` is a copy."""
    found = []
    for top in ("graphforge", "runtimes"):
        for path in sorted((ROOT / top).rglob("*.py")):
            text = path.read_text()
            tree = ast.parse(text)
            for fn in ast.walk(tree):
                if not isinstance(fn, ast.FunctionDef):
                    continue
                names = {n.attr if isinstance(n, ast.Attribute) else n.id for n in ast.walk(fn)
                         if isinstance(n, (ast.Attribute, ast.Name))}
                consts = {n.value for n in ast.walk(fn) if isinstance(n, ast.Constant)}
                graph_level = ("mean" in names or "mean" in consts) and ("rsqrt" in names or "rsqrt" in consts)
                jnp_level = "mean" in names and ("sqrt" in names or "rsqrt" in names) and "var" in names
                if graph_level or jnp_level:
                    found.append(f"{path.relative_to(ROOT)}:{fn.name}")
    other_formulas = {
        "graphforge/ops/nn_norm.py:_ln_ref",           # the NumPy reference: the oracle the rest is tested on
        "graphforge/ops/nn_norm.py:_bn_ref",           # batch_norm: statistics over the batch, another op
        "graphforge/ops/nn_norm.py:_bn_vjp",
        "runtimes/jax/nn_ops.py:_batch_norm",
        "runtimes/onnx_import/nn_ops.py:_rmsnorm",      # RMS norm: no centring, another formula
    }
    assert set(found) - other_formulas == {"graphforge/ops/nn_norm.py:normalize"}, found
