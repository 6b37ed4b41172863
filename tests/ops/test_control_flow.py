"""cond / scan / while_loop / fori_loop: the tracing API (pytrees, automatic capture, errors), the
reference against plain Python loops, the JAX lowering, and gradients — float64 finite differences
through the reference and ``jax.grad`` of the equivalent hand-written ``lax`` program through JAX."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from gf_testutil import numeric_grad

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

F64 = "float64"
rng = np.random.default_rng(0)


def _run_all(g, arrays, rtol=1e-10):
    """Reference and JAX agree; the text round-trips exactly. Returns the reference outputs."""
    assert str(gf.parse(str(g))) == str(g)
    ref = gf.run(g, arrays, backend="reference")
    got = gf.run(g, arrays, backend="jax")
    for a, b in zip(ref, got):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol)
    return ref


def _grad_check(fn, specs, arrays, jax_fn=None, rtol=1e-6):
    """gf.grad of the traced scalar ``fn`` against finite differences (reference) and, with
    ``jax_fn``, against jax.grad of it (on JAX)."""
    g = gf.trace(fn, *specs)
    g.verify()
    names = [v.name for v in g.inputs]
    gg = gf.grad(g, wrt=names, optimize=False)
    gg.verify()
    assert str(gf.parse(str(gg))) == str(gg)
    got = gf.run(gg, arrays, backend="reference")

    def loss(xs):
        return gf.run(g, xs, backend="reference")[0]

    np.testing.assert_allclose(got[0], loss(arrays), rtol=1e-12)
    for i in range(len(names)):
        np.testing.assert_allclose(got[1 + i], numeric_grad(loss, arrays, i), rtol=rtol, atol=1e-7,
                                   err_msg=f"d/d{names[i]}")
    on_jax = gf.run(gg, arrays, backend="jax")
    for a, b in zip(got, on_jax):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-10)
    optimized = gf.run(gf.optimize(gg), arrays, backend="jax")
    for a, b in zip(got, optimized):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-10)
    if jax_fn is not None:
        with jax.enable_x64(True):
            want = jax.grad(jax_fn, argnums=tuple(range(len(arrays))))(*[jnp.asarray(a) for a in arrays])
        for i, w in enumerate(want):
            np.testing.assert_allclose(got[1 + i], np.asarray(w), rtol=1e-9, atol=1e-10)
    return gg


# ---- forward semantics ------------------------------------------------------------------------------

@pytest.mark.parametrize("reverse", [False, True])
def test_scan_matches_a_python_loop(reverse):
    def f(x, w):
        h, ys = gf.scan(lambda h, xt: (gf.tanh(h @ w + xt), {"y": h * 2.0}), x[0], x, reverse=reverse)
        return h, ys["y"]

    x, w = rng.standard_normal((6, 3)), rng.standard_normal((3, 3)) * 0.5
    g = gf.trace(f, gf.TensorSpec((6, 3), F64), gf.TensorSpec((3, 3), F64))
    assert [n.op for n in g.nodes].count("scan") == 1
    assert g.nodes[[n.op for n in g.nodes].index("scan")].attrs["num_consts"] == 1  # w was captured
    h, ys = _run_all(g, [x, w])
    hh, want = x[0], np.zeros((6, 3))
    for t in (range(5, -1, -1) if reverse else range(6)):
        want[t] = hh * 2.0
        hh = np.tanh(hh @ w + x[t])
    np.testing.assert_allclose(h, hh, rtol=1e-12)
    np.testing.assert_allclose(ys, want, rtol=1e-12)


def test_scan_without_xs_needs_length_and_ys_may_be_none():
    def f(x):
        c, ys = gf.scan(lambda c, _: ((c[0] * 2.0, c[1] + 1.0), None), (x, x), length=4)
        assert ys is None
        return c[0] + c[1]

    g = gf.trace(f, gf.TensorSpec((2,), F64))
    (out,) = _run_all(g, [np.array([1.0, 2.0])])
    np.testing.assert_allclose(out, [16 + 5, 32 + 6])
    with pytest.raises(gf.TraceError, match="length"):
        gf.trace(lambda x: gf.scan(lambda c, _: (c, None), x)[0], gf.TensorSpec((2,)))


def test_scan_over_a_symbolic_length():
    g = gf.trace(lambda x: gf.scan(lambda c, xt: (c * xt, c), gf.ones((3,), "float64"), x)[1],
                 gf.TensorSpec(("t", 3), F64))
    assert "f64[t,3]" in str(g)
    x = rng.uniform(0.5, 1.5, (5, 3))
    (ys,) = _run_all(g, [x])
    np.testing.assert_allclose(ys[1:], np.cumprod(x, 0)[:-1], rtol=1e-12)
    (ys0,) = _run_all(g, [np.zeros((0, 3))])
    assert ys0.shape == (0, 3)


def test_cond_picks_the_branch_at_run_time_and_captures_outer_values():
    def f(p, a, b):
        return gf.cond(p.sum() > 0, lambda u: u * b, lambda u: u - b, a)

    g = gf.trace(f, gf.TensorSpec((2,), F64), gf.TensorSpec((3,), F64), gf.TensorSpec((3,), F64))
    cond = next(n for n in g.nodes if n.op == "cond")
    assert len(cond.inputs) == 3 and all(len(r.arguments) == 2 for r in cond.regions)  # b captured in both
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    np.testing.assert_allclose(_run_all(g, [np.ones(2), a, b])[0], a * b)
    np.testing.assert_allclose(_run_all(g, [-np.ones(2), a, b])[0], a - b)


def test_while_loop_and_fori_loop():
    def f(x):
        i, y = gf.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, s[1] * 2.0), (gf.constant(np.array(0)), x))
        z = gf.fori_loop(0, 4, lambda k, c: c + k.astype("float64"), y)
        n = gf.constant(np.array(2))
        w = gf.fori_loop(n * 0, n, lambda k, c: c * 3.0, z)
        return i, z, w

    g = gf.trace(f, gf.TensorSpec((2,), F64))
    i, z, w = _run_all(g, [np.array([1.0, -1.0])])
    assert int(i) == 3
    np.testing.assert_allclose(z, [8 + 6, -8 + 6])
    np.testing.assert_allclose(w, 9 * z)
    assert [n.op for n in g.nodes].count("while_loop") == 2 and [n.op for n in g.nodes].count("scan") == 1


def test_bounded_while_loop_stops_after_max_iterations():
    g = gf.trace(lambda x: gf.while_loop(lambda c: c.sum() > -1e9, lambda c: c - 1.0, x, max_iterations=5),
                 gf.TensorSpec((2,), F64))
    np.testing.assert_allclose(_run_all(g, [np.zeros(2)])[0], [-5, -5])


def test_params_used_in_a_body_are_captured_as_operands():
    class Cell(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, xs):
            h, ys = gf.scan(lambda h, x: (gf.tanh(self.fc(h) + x), h), gf.zeros((4,)), xs)
            return ys.sum() + h.sum()

    g = gf.trace(Cell(), gf.TensorSpec((5, 4)), seed=0)
    g.verify()
    scan = next(n for n in g.nodes if n.op == "scan")
    assert {v.name for v in scan.inputs[:2]} == {"fc.weight", "fc.bias"}
    x = rng.standard_normal((5, 4)).astype(np.float32)
    _run_all(g, [x], rtol=1e-5)
    tg = gf.grad(g)
    assert tg.output_names == ["output", "grad:fc.weight", "grad:fc.bias"]
    a, b = gf.run(tg, [x]), gf.run(tg, [x], backend="jax")
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)


def test_nested_regions_capture_through_every_level():
    def f(x, s):
        def outer(c, xt):
            inner = gf.cond(xt.sum() > 0, lambda u: u * s, lambda u: u + s, c)  # s: two levels out
            c2, _ = gf.scan(lambda d, _: (d * 0.5 + s, None), inner, length=2)
            return c2, c2.sum()
        return gf.scan(outer, x[0], x)

    g = gf.trace(f, gf.TensorSpec((3, 2), F64), gf.TensorSpec((2,), F64))
    g.verify()
    x, s = rng.standard_normal((3, 2)), rng.standard_normal(2)
    c, ys = _run_all(g, [x, s])
    cc = x[0]
    for t in range(3):
        cc = cc * s if x[t].sum() > 0 else cc + s
        for _ in range(2):
            cc = cc * 0.5 + s
    np.testing.assert_allclose(c, cc, rtol=1e-12)


# ---- errors ---------------------------------------------------------------------------------------------

def test_a_carry_that_changes_type_names_the_carry_both_types_and_the_line():
    with pytest.raises(gf.ShapeError) as info:
        gf.trace(lambda x: gf.scan(lambda c, xt: ({"h": c["h"].sum(0, keepdims=True)}, None), {"h": x[0]}, x),
                 gf.TensorSpec((4, 3)))
    text = str(info.value)
    assert "carry['h']" in text and "f32[3]" in text and "f32[1]" in text
    assert "test_control_flow.py:" in text


def test_branches_of_different_types_name_the_branch_and_both_types():
    with pytest.raises(gf.ShapeError) as info:
        gf.trace(lambda p, a: gf.cond(p, lambda u: u, lambda u: u.sum(), a),
                 gf.TensorSpec((), "bool"), gf.TensorSpec((3,)))
    text = str(info.value)
    assert "else branch" in text and "f32[]" in text and "f32[3]" in text and "test_control_flow.py:" in text


def test_while_carry_type_change_is_a_shape_error():
    with pytest.raises(gf.ShapeError, match="carry"):
        gf.trace(lambda x: gf.while_loop(lambda c: c.sum() > 0, lambda c: c.astype("float64"), x),
                 gf.TensorSpec((3,)))


def test_unbounded_while_loop_under_grad_suggests_max_iterations():
    g = gf.trace(lambda x: gf.while_loop(lambda c: c.sum() < 10.0, lambda c: c * 2.0, x).sum(),
                 gf.TensorSpec((3,), F64))
    with pytest.raises(gf.UnsupportedOpError) as info:
        gf.grad(g, wrt=["x"])
    text = str(info.value)
    assert "while_loop" in text and "max_iterations" in text and "test_control_flow.py:" in text


# ---- gradients --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("remat", [False, True], ids=["saved", "remat"])
def test_scan_gradient(reverse, remat):
    T, D = 5, 3
    wy = rng.standard_normal((T, D))

    def f(x, w, h0):
        h, ys = gf.scan(lambda h, xt: (gf.tanh(h @ w + xt), gf.sin(h) * xt), h0, x, reverse=reverse, remat=remat)
        return (ys * gf.constant(wy, "float64")).sum() + (h * h).sum()

    def jf(x, w, h0):
        def step(h, xt):
            return jnp.tanh(h @ w + xt), jnp.sin(h) * xt
        h, ys = lax.scan(step, h0, x, reverse=reverse)
        return (ys * wy).sum() + (h * h).sum()

    arrays = [rng.standard_normal((T, D)), rng.standard_normal((D, D)) * 0.5, rng.standard_normal(D)]
    gg = _grad_check(f, [gf.TensorSpec((T, D), F64), gf.TensorSpec((D, D), F64), gf.TensorSpec((D,), F64)],
                     arrays, jf)
    scans = [n for n in gg.walk() if n.op == "scan"]
    assert {n.attrs["reverse"] for n in scans} == {False, True}


def test_cond_gradient_on_both_branches():
    def f(p, a, b):
        out = gf.cond(p.sum() > 0, lambda u, v: (gf.sin(u) * v, u), lambda u, v: (u * u - v, v * 3.0), a, b)
        return (out[0] * out[1]).sum()

    def jf(p, a, b):
        o = lax.cond(p.sum() > 0, lambda u, v: (jnp.sin(u) * v, u), lambda u, v: (u * u - v, v * 3.0), a, b)
        return (o[0] * o[1]).sum()

    specs = [gf.TensorSpec((2,), F64), gf.TensorSpec((3,), F64), gf.TensorSpec((3,), F64)]
    for sign in (1.0, -1.0):
        _grad_check(f, specs, [np.full(2, sign), rng.standard_normal(3), rng.standard_normal(3)], jf)


def test_bounded_while_loop_gradient():
    def f(x, k):
        y = gf.while_loop(lambda c: (c * c).sum() > 0.1, lambda c: gf.sin(c) * k, x, max_iterations=4)
        return (y * y).sum()

    _grad_check(f, [gf.TensorSpec((3,), F64), gf.TensorSpec((), F64)], [rng.standard_normal(3) + 1.0, np.array(0.7)])


def test_nested_control_flow_gradient():
    def f(x, s):
        def outer(c, xt):
            inner = gf.cond(xt.sum() > 0, lambda u: u * s, lambda u: gf.tanh(u + s), c)
            c2, ys = gf.scan(lambda d, e: (d * 0.5 + s * e, d), inner, gf.stack([xt, xt * 2.0]))
            return c2, ys.sum()
        c, ys = gf.scan(outer, x[0], x)
        return (c * c).sum() + ys.sum()

    _grad_check(f, [gf.TensorSpec((3, 2), F64), gf.TensorSpec((2,), F64)],
                [rng.standard_normal((3, 2)), rng.standard_normal(2)])


def test_second_order_gradient_through_a_scan():
    def f(x):
        h, _ = gf.scan(lambda h, xt: (gf.sin(h) * xt, None), gf.ones((2,), "float64"), x)
        return h.sum()

    g = gf.trace(f, gf.TensorSpec((3, 2), F64))
    first = gf.grad(g, wrt=["x"], optimize=False)
    from graphforge.trace.builder import Builder
    from graphforge.trace.tensor import Tensor
    b = Builder(first, capture_locations=False)
    with b.activate():
        total = gf.sum(Tensor(first.outputs[1], b) * Tensor(first.outputs[1], b))
    first.set_outputs([total.value], ["gg"])
    second = gf.grad(first, wrt=["x"], optimize=False)
    x = rng.standard_normal((3, 2))
    got = gf.run(second, [x])[1]
    want = numeric_grad(lambda xs: gf.run(first, xs)[0], [x], 0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_summary_counts_trip_count_times_body():
    from graphforge.summary import graph_flops

    body_only = gf.trace(lambda h, w, xt: h @ w + xt, gf.TensorSpec((4,)), gf.TensorSpec((4, 4)), gf.TensorSpec((4,)))
    per_step = graph_flops(body_only)
    g = gf.trace(lambda x, w: gf.scan(lambda c, xt: (c @ w + xt, None), x[0], x)[0],
                 gf.TensorSpec((10, 4)), gf.TensorSpec((4, 4)))
    assert graph_flops(g) == 10 * per_step > 0
    bounded = gf.trace(lambda x: gf.while_loop(lambda c: c.sum() > 0, lambda c: c * 0.5, x, max_iterations=7),
                       gf.TensorSpec((4,)))
    unbounded = gf.trace(lambda x: gf.while_loop(lambda c: c.sum() > 0, lambda c: c * 0.5, x), gf.TensorSpec((4,)))
    assert graph_flops(bounded) == 7 * graph_flops(unbounded) > 0
    branchy = gf.trace(lambda p, x: gf.cond(p, lambda u: u @ u, lambda u: u + 1.0, x),
                       gf.TensorSpec((), "bool"), gf.TensorSpec((4, 4)))
    assert graph_flops(branchy) == graph_flops(gf.trace(lambda u: u @ u, gf.TensorSpec((4, 4))))
    assert "FLOPs per example" in gf.summary(g, print_fn=None)


def test_fori_loop_gradient_and_guards_inside_bodies():
    def f(x, k):
        return gf.fori_loop(0, 3, lambda i, c: gf.sin(c) * k + i.astype("float64"), x).sum()

    _grad_check(f, [gf.TensorSpec((3,), F64), gf.TensorSpec((), F64)], [rng.standard_normal(3), np.array(0.8)])
    from graphforge.guards import guards
    g = gf.trace(lambda x: gf.scan(lambda c, xt: (c + xt[:5].sum(), None), x[0, 0], x)[0],
                 gf.TensorSpec((2, "n"), F64))
    assert guards(g), "the slice guard inside the body (5 <= n) is found"


def test_a_body_value_used_outside_its_body_is_a_trace_error():
    leaked = []

    def f(x):
        def body(c, xt):
            leaked.append(c * 2.0)
            return c + xt, None
        c, _ = gf.scan(body, x[0], x)
        return leaked[-1] + c

    with pytest.raises(gf.TraceError, match="inside the body of scan") as info:
        gf.trace(f, gf.TensorSpec((3, 2)))
    assert "test_control_flow.py:" in str(info.value) and "return the value from the body" in str(info.value)
