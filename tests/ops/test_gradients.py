"""Gradient checks: every differentiable op's VJP rule (through ``gf.grad`` and the reference
back end) against central finite differences in float64, on every sample with ``grad=True``;
second-order gradients for smooth ops; and the autodiff pass's own behaviour."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge.guards import guards
from graphforge import dtypes as _dt
from graphforge.ir.types import TensorType
from graphforge.ops.registry import NOT_DIFFERENTIABLE, Sample, all_ops, get_op
from graphforge.trace.builder import Builder
from graphforge.trace.tensor import Tensor
from gf_testutil import numeric_grad, resolve_shape, sample_arrays, to_float64, weighted_loss_graph, zip_outputs

RTOL, ATOL = 1e-5, 1e-6


def _differentiable(opdef, sample):
    return (opdef.vjp is not NOT_DIFFERENTIABLE and sample.grad
            and any(_dt.is_float(t.dtype) and i not in opdef.nondiff_inputs for i, t in enumerate(sample.inputs)))


GRAD_SAMPLES = [pytest.param(name, k, id=f"{name}-{k}")
                for name, opdef in all_ops().items() for k, s in enumerate(opdef.samples) if _differentiable(opdef, s)]


def _weights(graph, names, env, seed=7):
    rng = np.random.default_rng(seed)
    by_name = {v.name: v for v in graph.inputs}
    return [rng.standard_normal(resolve_shape(by_name[n].type.shape, env)) for n in names]


def check_gradient(op: str, sample: Sample):
    opdef = get_op(op)
    s64 = to_float64(sample)
    graph, data, weights = weighted_loss_graph(op, s64)
    arrays = sample_arrays(s64) + _weights(graph, weights, s64.bind)
    wrt = [name for i, name in enumerate(data)
           if _dt.is_float(s64.inputs[i].dtype) and i not in opdef.nondiff_inputs]
    grad_graph = gf.grad(graph, wrt=wrt, optimize=False)
    grad_graph.verify()
    assert grad_graph.output_names == ["loss"] + [f"grad:{n}" for n in wrt]
    results = gf.run(grad_graph, arrays, backend="reference")

    def loss(xs):
        return gf.run(graph, xs, backend="reference")[0]

    np.testing.assert_allclose(results[0], loss(arrays), rtol=1e-12)
    for j, name in enumerate(wrt):
        i = data.index(name)
        analytic = results[1 + j]
        assert analytic.shape == arrays[i].shape and analytic.dtype == np.float64
        numeric = numeric_grad(loss, arrays, i)
        np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL,
                                   err_msg=f"d loss / d {name} of {op} ({sample.note or sample.attrs})")


@pytest.mark.parametrize("op,k", GRAD_SAMPLES)
def test_vjp_matches_finite_differences(op, k):
    check_gradient(op, get_op(op).samples[k])


@pytest.mark.parametrize("op", [pytest.param(n, id=n) for n in all_ops()])
def test_every_op_has_a_vjp_decision(op):
    opdef = get_op(op)
    assert opdef.vjp is NOT_DIFFERENTIABLE or callable(opdef.vjp)
    every_input_constant = opdef.num_inputs[1] is not None and set(range(opdef.num_inputs[1])) <= set(opdef.nondiff_inputs)
    if every_input_constant:  # stop_gradient: its VJP gives no cotangent (tests/ops/test_stop_gradient.py)
        return
    if opdef.vjp is not NOT_DIFFERENTIABLE and any(_dt.is_float(t.dtype) for s in opdef.samples for t in s.inputs):
        assert any(_differentiable(opdef, s) for s in opdef.samples), f"{op}: no sample checks its gradient"


# ---- second order -------------------------------------------------------------------------

def _second_order(fn, *shapes, seed=3):
    """d/dx sum(grad_x(f) * v) by gf.grad of the gradient graph, against finite differences of the
    first gradient."""
    specs = [gf.TensorSpec(s, "float64") for s in shapes]
    g = gf.trace(fn, *specs)
    names = [v.name for v in g.inputs]
    first = gf.grad(g, wrt=names, optimize=False)
    rng = np.random.default_rng(seed)
    # Weight every first-order gradient by a fixed random tensor and sum: a scalar.
    builder = Builder(first, capture_locations=False)
    total = None
    vs = []
    with builder.activate():
        for j, name in enumerate(names):
            grad_value = first.outputs[1 + j]
            v = first.add_input(f"v{j}", grad_value.type)
            vs.append(rng.standard_normal(grad_value.type.shape))
            term = gf.sum(Tensor(grad_value, builder) * Tensor(v, builder))
            total = term if total is None else total + term
    first.set_outputs([total.value], ["gv"])
    first.verify()
    second = gf.grad(first, wrt=names, optimize=False)
    xs = [rng.standard_normal(s) for s in shapes]
    got = gf.run(second, xs + vs)

    def gv(arrays):
        return gf.run(first, arrays)[0]

    for i in range(len(names)):
        numeric = numeric_grad(gv, xs + vs, i)
        np.testing.assert_allclose(got[1 + i], numeric, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("fn,shapes", [
    pytest.param(lambda x: gf.sum(gf.tanh(x) * x), [(2, 3)], id="tanh"),
    pytest.param(lambda x: gf.sum(gf.exp(x * 0.5)), [(3,)], id="exp"),
    pytest.param(lambda a, b: gf.sum(a * b * a), [(2, 3), (3,)], id="mul"),
    pytest.param(lambda a, b: gf.sum(gf.tanh(a @ b)), [(2, 3), (3, 4)], id="matmul"),
    pytest.param(lambda x: gf.sum(gf.softmax(x, -1) * gf.constant(np.arange(12.0).reshape(3, 4), "float64")),
                 [(3, 4)], id="softmax"),
    pytest.param(lambda x: gf.sum(gf.log_softmax(x, 0) * gf.constant(np.arange(12.0).reshape(3, 4), "float64")),
                 [(3, 4)], id="log_softmax"),
])
def test_second_order_gradients(fn, shapes):
    _second_order(fn, *shapes)


# ---- the autodiff pass ----------------------------------------------------------------------

def _loss_graph(mlp_module):
    from graphforge.nn import functional as F

    def loss(x, labels):
        return F.cross_entropy(mlp_module(x), labels)

    return gf.trace(loss, gf.TensorSpec(("batch", 6), "float32"), gf.TensorSpec(("batch",), "int64"), seed=0)


def test_grad_wrt_params_of_a_traced_model(mlp_module, rng):
    g = _loss_graph(mlp_module)
    gg = gf.grad(g, optimize=False)
    assert gg.output_names == ["output"] + [f"grad:{n}" for n in g.trainable_names]
    x = rng.standard_normal((4, 6)).astype(np.float32)
    labels = np.array([0, 2, 1, 2])
    outs = gf.run(gg, {"x": x, "labels": labels})
    for grad, name in zip_outputs(outs[1:], g.trainable_names):
        assert grad.shape == g.params[name].shape and grad.dtype == np.float32
    # Finite differences in float64 on one weight entry.
    p = {k: v.astype(np.float64) for k, v in g.params.items()}
    g64 = gf.parse(str(g).replace("f32", "f64").replace('"float32"', '"float64"'), params=p)
    eps = 1e-6
    (name,) = [n for n in g.trainable_names if n.endswith("layer1.weight")]
    w = p[name]
    plus, minus = dict(p), dict(p)
    plus[name] = w.copy(); plus[name][3, 2] += eps
    minus[name] = w.copy(); minus[name][3, 2] -= eps
    num = (gf.run(g64, [x, labels], params=plus)[0] - gf.run(g64, [x, labels], params=minus)[0]) / (2 * eps)
    i = g.trainable_names.index(name)
    np.testing.assert_allclose(outs[1 + i][3, 2], num, rtol=1e-3, atol=1e-5)


def test_optimized_gradient_graph_computes_the_same_values(mlp_module, rng):
    g = _loss_graph(mlp_module)
    inputs = {"x": rng.standard_normal((5, 6)).astype(np.float32), "labels": np.array([0, 1, 2, 0, 1])}
    raw = gf.grad(g, optimize=False)
    opt = gf.grad(g)
    assert opt.output_names == raw.output_names
    for a, b in zip_outputs(gf.run(raw, inputs), gf.run(opt, inputs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unused_parameter_gets_a_zero_gradient():
    from graphforge import nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(3, 2)
            self.unused = nn.Linear(3, 2)

        def forward(self, x):
            return self.used(x).sum()

    g = gf.trace(M(), gf.TensorSpec((2, 3), "float32"))
    gg = gf.grad(g, wrt=["unused.weight", "x"], optimize=False)
    out = gf.run(gg, [np.ones((2, 3), np.float32)])
    np.testing.assert_array_equal(out[1], np.zeros((2, 3), np.float32))
    assert out[2].shape == (2, 3)


def test_gradient_stops_at_non_differentiable_ops():
    g = gf.trace(lambda x: gf.sum(gf.cast(gf.argmax(x, -1), "float32") + x.sum()), gf.TensorSpec((2, 3), "float32"))
    out = gf.run(gf.grad(g, wrt=["x"], optimize=False), [np.arange(6, dtype=np.float32).reshape(2, 3)])
    np.testing.assert_allclose(out[1], np.full((2, 3), 2.0))  # d sum(argmax + s) = 2 ds


def test_grad_errors():
    g = gf.trace(lambda x, i: (x * 2.0, gf.cast(i, "float32").sum()), gf.TensorSpec((2,), "float32"),
                 gf.TensorSpec((2,), "int32"))
    with pytest.raises(gf.ShapeError, match="not a scalar"):
        gf.grad(g, wrt=["x"])
    with pytest.raises(gf.GraphforgeError, match="only floating-point"):
        gf.grad(g, wrt=["i"], output=1)
    with pytest.raises(gf.GraphforgeError, match="no input or parameter named 'nope'"):
        gf.grad(g, wrt=["nope"], output=1)
    with pytest.raises(gf.GraphforgeError, match="does not exist"):
        gf.grad(g, wrt=["x"], output=5)
    with pytest.raises(gf.GraphforgeError, match="more than once"):
        gf.grad(gf.trace(lambda x: x.sum(), gf.TensorSpec((2,))), wrt=["x", "x"])


def test_vjp_with_a_cotangent_input_and_kept_outputs():
    g = gf.trace(lambda x: (gf.tanh(x), x.sum()), gf.TensorSpec(("n", 3), "float64"))
    gg = gf.grad(g, wrt=["x"], cotangent_input=True, keep_outputs=True, optimize=False)
    assert [v.name for v in gg.inputs] == ["x", "d_output"]
    assert gg.output_names == ["output", "grad:x", "output1"]
    x = np.random.default_rng(0).standard_normal((4, 3))
    ct = np.random.default_rng(1).standard_normal((4, 3))
    y, gx, s = gf.run(gg, [x, ct])
    np.testing.assert_allclose(gx, ct * (1 - np.tanh(x) ** 2), rtol=1e-12)
    np.testing.assert_allclose(s, x.sum())


def test_gradient_nodes_keep_forward_provenance():
    g = gf.trace(lambda x: gf.sum(gf.tanh(x)), gf.TensorSpec((2,), "float32"))
    forward_loc = g.nodes[0].loc
    gg = gf.grad(g, wrt=["x"], optimize=False)
    assert forward_loc.startswith("test_gradients.py:")
    assert all(n.loc for n in gg.nodes if n.op != "constant" or n.loc)
    assert any(n.loc == forward_loc for n in gg.nodes[len(g.nodes):])


@pytest.mark.parametrize("target", ["float16", "bfloat16"])
def test_vjp_rules_keep_half_precision_dtypes(target):
    """VJP rules build their constants in the cotangent's dtype: a half-precision graph's gradient
    graph type-checks and runs in half precision for every differentiable sample."""
    for param in GRAD_SAMPLES:
        op, k = param.values
        opdef = get_op(op)
        s = opdef.samples[k]
        inputs = [TensorType(t.shape, target) if _dt.is_float(t.dtype) else t for t in s.inputs]
        attrs = {a: (target if v in ("float32", "float64") else v) for a, v in s.attrs.items()}
        half = Sample(inputs, attrs=attrs, bind=dict(s.bind), domain=s.domain, regions=s.regions)
        graph, data, weights = weighted_loss_graph(op, half)
        wrt = [n for i, n in enumerate(data) if _dt.is_float(inputs[i].dtype) and i not in opdef.nondiff_inputs]
        grads = gf.grad(graph, wrt=wrt, optimize=False)
        arrays = sample_arrays(half) + [np.ones(resolve_shape(v.type.shape, s.bind), _dt.to_numpy_dtype(target))
                                        for v in graph.inputs[len(half.inputs):]]
        for array, value in zip_outputs(gf.run(grads, arrays), grads.outputs):
            assert array.dtype == _dt.to_numpy_dtype(target), (op, k, value)


def _reshaped(t, rng):
    shape = list(t.shape)
    r = rng.integers(4)
    if r == 0 and shape:
        shape.pop(rng.integers(len(shape)))
    elif r == 1:
        shape.insert(rng.integers(len(shape) + 1), int(rng.integers(1, 4)))
    elif r == 2 and shape:
        shape[rng.integers(len(shape))] = 1
    else:
        shape = []
    return TensorType(tuple(shape), t.dtype)


DIFF_OPS = sorted({p.values[0] for p in GRAD_SAMPLES})


# draws of re-shaped inputs per sample: two in the default tier, five more in the slow tier
# (``make test-slow``; the seeds differ, so the slow tier adds shapes rather than repeating them)
SHAPE_DRAWS = [pytest.param(2, 1, id="2draws"), pytest.param(5, 101, id="5draws", marks=pytest.mark.slow)]


@pytest.mark.parametrize("draws, seed", SHAPE_DRAWS)
@pytest.mark.parametrize("op", DIFF_OPS)
def test_vjp_on_other_shapes_the_type_rule_accepts(op, draws, seed):
    """Beyond the samples: float inputs re-shaped (rank 0, size-1 dims, extra/fewer axes); whenever
    the type rule accepts, the gradient matches finite differences."""
    from graphforge.ir.graph import Graph

    opdef = get_op(op)
    rng = np.random.default_rng(sum(map(ord, op)) + seed)
    for sample in opdef.samples:
        if not sample.grad:
            continue
        for _ in range(draws):
            types = [_reshaped(t, rng) if _dt.is_float(t.dtype) and rng.random() < 0.7 else t for t in sample.inputs]
            graph = Graph("probe")
            try:
                Builder(graph).emit(op, [graph.add_input(f"x{i}", t) for i, t in enumerate(types)], dict(sample.attrs))
            except gf.GraphforgeError:
                continue
            if not all(g.requirement.holds(sample.bind) for g in guards(graph)):
                continue  # accepted only for sizes other than the sample's (a guard, e.g. seq <= 1)
            other = Sample(types, attrs=sample.attrs, bind=sample.bind, domain=sample.domain)
            try:
                check_gradient(op, other)
            except gf.BackendError:
                assert op in ("gather", "scatter_add", "embedding")  # indices out of range for a new shape
                continue


@pytest.mark.parametrize("op,k", GRAD_SAMPLES)
def test_default_gradient_pipeline_keeps_the_values(op, k):
    """gf.grad's default (optimize=True) runs the pass pipeline on the gradient graph: same outputs,
    names and values as the raw autodiff result, in the sample's own dtypes."""
    opdef = get_op(op)
    sample = opdef.samples[k]
    graph, data, weights = weighted_loss_graph(op, sample)
    arrays = sample_arrays(sample) + _weights(graph, weights, sample.bind)
    arrays = [np.asarray(a).astype(_dt.to_numpy_dtype(v.type.dtype)) for a, v in zip(arrays, graph.inputs)]
    wrt = [n for i, n in enumerate(data) if _dt.is_float(sample.inputs[i].dtype) and i not in opdef.nondiff_inputs]
    raw = gf.grad(graph, wrt=wrt, optimize=False)
    opt = gf.grad(graph, wrt=wrt)
    opt.verify()
    assert opt.output_names == raw.output_names
    for a, b in zip_outputs(gf.run(raw, arrays), gf.run(opt, arrays)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
