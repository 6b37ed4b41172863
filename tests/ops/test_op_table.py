"""Conformance of the op table: for every registered op and every sample, the type rule agrees
with the NumPy reference, and the one-node graph survives the text round trip."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge.guards import guards
from graphforge import dtypes as _dt
from graphforge.ops.registry import NOT_DIFFERENTIABLE, all_ops, get_op
from graphforge.ops.samples import make_inputs
from gf_testutil import build_sample_graph, dim_symbols, op_params, resolve_shape, sample_params, zip_outputs

SAMPLES = sample_params()


@pytest.mark.parametrize("op,k", SAMPLES)
def test_type_rule_agrees_with_reference(op, k):
    sample = get_op(op).samples[k]
    graph, outs = build_sample_graph(op, sample)
    graph.verify()
    results = gf.run(graph, make_inputs(sample), backend="reference")
    for array, value in zip_outputs(results, outs):
        assert isinstance(array, np.ndarray)
        assert array.shape == resolve_shape(value.type.shape, sample.bind), (value.type, array.shape)
        assert array.dtype == _dt.to_numpy_dtype(value.type.dtype), (value.type, array.dtype)


@pytest.mark.parametrize("op,k", SAMPLES)
def test_sample_text_round_trip(op, k):
    sample = get_op(op).samples[k]
    graph, _ = build_sample_graph(op, sample)
    text = str(graph)
    parsed = gf.parse(text)
    assert str(parsed) == text
    inputs = make_inputs(sample)
    for a, b in zip_outputs(gf.run(graph, inputs), gf.run(parsed, inputs)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("op,k", SAMPLES)
def test_sample_symbols_are_bound_by_inputs(op, k):
    """A sample's symbolic dims are bound, and every symbol of a result comes from an input
    (otherwise the graph could not be run)."""
    sample = get_op(op).samples[k]
    in_symbols = set().union(set(), *(dim_symbols(d) for t in sample.inputs for d in t.shape))
    assert in_symbols <= set(sample.bind), f"unbound symbols {in_symbols - set(sample.bind)}"
    graph, outs = build_sample_graph(op, sample)
    out_symbols = set().union(set(), *(dim_symbols(d) for v in outs for d in v.type.shape))
    # a data-dependent length (ops/data_dependent.py) is a symbol the node names, bound by running it;
    # its sample binds the value its fixed input gives
    data_dependent = {n.attrs["length"] for n in graph.nodes if isinstance(n.attrs.get("length"), str)}
    assert data_dependent <= set(sample.bind), f"unbound data-dependent lengths {data_dependent - set(sample.bind)}"
    assert out_symbols <= in_symbols | data_dependent


@pytest.mark.parametrize("op,k", SAMPLES)
def test_flops_are_counted(op, k):
    opdef = get_op(op)
    sample = opdef.samples[k]
    graph, outs = build_sample_graph(op, sample)
    concrete = lambda t: t.with_shape(resolve_shape(t.shape, sample.bind))  # noqa: E731
    flops = opdef.flops([concrete(v.type) for v in graph.inputs], [concrete(v.type) for v in outs],
                        graph.nodes[0].attrs)
    assert int(flops) == flops and flops >= 0


@pytest.mark.parametrize("op", op_params())
def test_every_op_is_complete(op):
    """One op, one registry entry: a VJP decision, a FLOP count and >= 2 samples, one of which has
    broadcasting or a symbolic dim (ops without inputs cannot have either)."""
    opdef = get_op(op)
    assert opdef.vjp is NOT_DIFFERENTIABLE or callable(opdef.vjp), f"{op} has no VJP decision"
    assert callable(opdef.flops), f"{op} has no FLOP count"
    assert len(opdef.samples) >= 2, f"{op} has {len(opdef.samples)} sample(s)"
    if opdef.num_inputs[1] == 0:
        return

    def interesting(sample):
        symbolic = any(isinstance(d, str) for t in sample.inputs for d in t.shape)
        shapes = {tuple(t.shape) for t in sample.inputs}
        return symbolic or len(shapes) > 1

    assert any(interesting(s) for s in opdef.samples), f"{op}: no sample with broadcasting or a symbolic dim"


def test_registry_lists_the_core_families():
    names = set(all_ops())
    for op in ("add", "matmul", "linear", "reshape", "slice", "gather", "scatter_add", "sum", "softmax",
               "cast", "where", "constant", "arange", "one_hot", "dim_size", "split", "concat", "pad"):
        assert op in names


def test_unknown_op_is_unsupported():
    with pytest.raises(gf.UnsupportedOpError) as err:
        get_op("no_such_op")
    assert err.value.ops == ["no_such_op"]


@pytest.mark.parametrize("attrs,message", [
    ({"axes": [5]}, "out of range"),
    ({"axes": [0, 0]}, "repeated axis"),
    ({"axis": 1}, "unknown attribute"),
    ({"keepdims": "yes"}, "should be of kind bool"),
])
def test_attribute_and_axis_errors_are_shape_errors(attrs, message):
    graph = gf.Graph("g")
    x = graph.add_input("x", gf.TensorType((2, 3), "float32"))
    from graphforge.trace.builder import Builder

    with pytest.raises(gf.ShapeError, match=message):
        Builder(graph).emit("sum", [x], attrs)


def test_dtype_mismatch_is_a_dtype_error():
    graph = gf.Graph("g")
    a = graph.add_input("a", gf.TensorType((2,), "float32"))
    b = graph.add_input("b", gf.TensorType((2,), "int32"))
    from graphforge.trace.builder import Builder

    with pytest.raises(gf.DTypeError):
        Builder(graph).emit("add", [a, b])


def test_integer_division_truncates_toward_zero():
    g = gf.trace(lambda a, b: a / b, gf.TensorSpec((4,), "int32"), gf.TensorSpec((4,), "int32"))
    out = gf.run(g, [np.array([7, -7, 7, 5], np.int32), np.array([2, 2, -2, 0], np.int32)])[0]
    np.testing.assert_array_equal(out, [3, -3, -3, 0])


def test_cast_float_to_int_truncates():
    g = gf.trace(lambda x: x.astype("int32"), gf.TensorSpec((4,), "float32"))
    out = gf.run(g, [np.array([1.7, -1.7, 2.5, -0.2], np.float32)])[0]
    np.testing.assert_array_equal(out, [1, -1, 2, 0])


def test_gelu_matches_the_erf_definition():
    import math

    x = np.linspace(-3, 3, 13)
    want = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    g = gf.trace(lambda t: gf.gelu(t), gf.TensorSpec((13,), "float64"))
    np.testing.assert_allclose(gf.run(g, [x])[0], want, rtol=1e-12)
    lin = gf.trace(lambda t, w: gf.linear(t, w, activation="gelu"), gf.TensorSpec((13, 1), "float64"),
                   gf.TensorSpec((1, 1), "float64"))
    np.testing.assert_allclose(gf.run(lin, [x[:, None], np.ones((1, 1))])[0][:, 0], want, rtol=1e-12)


def test_gather_wraps_negative_indices():
    g = gf.trace(lambda x, i: gf.gather(x, i, 0), gf.TensorSpec((4,), "float32"), gf.TensorSpec((3,), "int64"))
    out = gf.run(g, [np.arange(4, dtype=np.float32), np.array([-1, 0, -4])])[0]
    np.testing.assert_array_equal(out, [3, 0, 0])


def test_full_and_dim_size_keep_their_dtype():
    def f(x):
        return gf.full((2,), 0.1, "float64"), gf.ops.dim_size(x, [1], "float64"), gf.ops.dim_size(x, [0], "float64")

    g = gf.trace(f, gf.TensorSpec(("n", 3), "float64"))
    assert [o.type.dtype for o in g.outputs] == ["float64"] * 3
    full, static, dynamic = gf.run(g, [np.zeros((5, 3))])
    assert full.dtype == np.float64 and full[0] == 0.1
    assert static == 3.0 and dynamic == 5.0


# ---- robustness of the type rules -------------------------------------------------------------

_DTYPES = ["float32", "float64", "int32", "int64", "uint32", "bool"]


def _mutate(t, rng):
    shape = list(t.shape)
    r = rng.integers(6)
    if r == 0 and shape:
        shape.pop(rng.integers(len(shape)))
    elif r == 1:
        shape.insert(rng.integers(len(shape) + 1), int(rng.integers(1, 4)))
    elif r == 2 and shape:
        shape[rng.integers(len(shape))] = "m"
    elif r == 3:
        return gf.TensorType(tuple(shape), _DTYPES[rng.integers(len(_DTYPES))])
    elif r == 4 and shape:
        shape[rng.integers(len(shape))] = int(rng.integers(0, 5))
    return gf.TensorType(tuple(shape), t.dtype)


@pytest.mark.parametrize("op", op_params())
def test_type_rules_refuse_cleanly_and_accepted_types_run(op):
    """Mutated input types (rank, dims, dtype, arity): the type rule either refuses with a
    GraphforgeError or accepts, and then the reference runs and agrees with it."""
    from graphforge.ops.registry import Sample
    from graphforge.ir.graph import Graph
    from graphforge.trace.builder import Builder

    opdef = get_op(op)
    rng = np.random.default_rng(sum(map(ord, op)))
    for sample in opdef.samples:
        for _ in range(30):
            types = [_mutate(t, rng) if rng.random() < 0.6 else t for t in sample.inputs]
            if types and rng.random() < 0.2:
                types = types[:-1] if rng.random() < 0.5 else types + [types[0]]
            graph = Graph("fuzz")
            ins = [graph.add_input(f"x{i}", t) for i, t in enumerate(types)]
            try:
                builder = Builder(graph, capture_locations=False)
                # region ops: the sample's bodies, traced on the mutated operand types
                regions = sample.regions(builder, types, dict(sample.attrs)) if sample.regions else None
                outs = builder.emit(op, ins, dict(sample.attrs), regions=regions)
            except gf.GraphforgeError:
                continue
            in_syms = set().union(set(), *(dim_symbols(d) for t in types for d in t.shape))
            if any(not dim_symbols(d) <= in_syms for v in outs for d in v.type.shape):
                continue  # a result dim no input binds (e.g. broadcast_to a new symbol): not runnable
            graph.set_outputs(outs)
            domains = list(sample.domain) if sample.domain else []
            domains = [d if isinstance(d, str) else "any" for d in domains] + ["any"] * len(types)
            concrete = Sample(types, attrs=sample.attrs, bind=dict(sample.bind, m=2), domain=domains[:len(types)],
                              regions=sample.regions)
            arrays = make_inputs(concrete)
            if any(a.dtype != _dt.to_numpy_dtype(t.dtype) for a, t in zip(arrays, types)):
                continue  # a domain that no longer fits the mutated dtype (e.g. "bool" for an int input)
            broken = [g for g in guards(graph) if not g.requirement.holds(concrete.bind)]
            if broken:  # accepted only under a guard these sizes break: the binding refuses, typed
                with pytest.raises(gf.InputError, match="constraint"):
                    gf.run(graph, arrays)
                continue
            try:
                results = gf.run(graph, arrays)
            except gf.BackendError as exc:
                # Index-valued inputs can be out of range for a mutated shape: a value error, reported.
                assert op in ("gather", "scatter_add", "embedding", "roi_align", "max_roi_pool"), str(exc)
                continue
            for array, value in zip_outputs(results, outs):
                assert array.shape == resolve_shape(value.type.shape, concrete.bind)
                assert array.dtype == _dt.to_numpy_dtype(value.type.dtype)


def test_reductions_without_identity_refuse_empty_axes():
    with pytest.raises(gf.ShapeError, match="size 0"):
        gf.trace(lambda x: x.max(0), gf.TensorSpec((0, 3)))
    with pytest.raises(gf.ShapeError, match="size 0"):
        gf.trace(lambda x: x.argmin(-1), gf.TensorSpec((2, 0)))
    g = gf.trace(lambda x: (x.max(1), x.sum(0)), gf.TensorSpec((0, 3)))
    a, b = gf.run(g, [np.zeros((0, 3), np.float32)])
    assert a.shape == (0,) and np.array_equal(b, np.zeros(3, np.float32))


@pytest.mark.parametrize("op", ["neg", "sign", "abs"])
def test_numeric_unary_ops_refuse_bool(op):
    with pytest.raises(gf.DTypeError, match="numeric"):
        gf.trace(lambda x: getattr(gf, op)(x), gf.TensorSpec((3,), "bool"))


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "maximum", "minimum"])
def test_arithmetic_refuses_bool(op):
    with pytest.raises(gf.DTypeError, match="logical_and"):
        gf.trace(lambda a, b: getattr(gf, op)(a, b), gf.TensorSpec((3,), "bool"), gf.TensorSpec((3,), "bool"))


def test_softmax_over_an_empty_axis_is_empty():
    g = gf.trace(lambda x: (gf.softmax(x, 1), gf.log_softmax(x, 1)), gf.TensorSpec(("n", 0, 5)))
    a, b = gf.run(g, [np.zeros((2, 0, 5), np.float32)])
    assert a.shape == b.shape == (2, 0, 5)
