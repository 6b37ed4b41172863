"""Every pass walks into regions (cond branches, scan/while bodies) and keeps the explicit capture
rule: CSE never merges values of different blocks, DCE sweeps bodies from their yield and keeps a
region's interface, fold/simplify/fuse/decompose rewrite inside bodies, infer re-checks regions."""
from __future__ import annotations

import numpy as np

import graphforge as gf
from passtest import random_inputs


def _same_values(before, after, backends=("reference", "jax")):
    inputs = random_inputs(before, 1)
    for backend in backends:
        for g, w in zip(gf.run(after, inputs, backend=backend), gf.run(before, inputs, backend=backend)):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def _inner_ops(graph):
    return [n.op for n in graph.walk() if n.block is not graph.nodes]


def test_cse_merges_inside_a_block_never_across_blocks():
    def f(x):
        a = gf.exp(x)
        h, _ = gf.scan(lambda c, xt: (gf.exp(c) + gf.exp(c) + gf.exp(xt), None), a[0], a)
        return h + gf.exp(x[0])

    g = gf.trace(f, gf.TensorSpec((3, 2)))
    after = gf.optimize(g, "infer,cse,dce", verify=True)
    assert _inner_ops(after).count("exp") == 2  # exp(c) twice -> once; exp(xt) stays (another value)
    assert [n.op for n in after.nodes].count("exp") == 2  # the outer ones are not merged with inner ones
    _same_values(g, after)


def test_constants_are_not_merged_into_another_region():
    def f(x):
        y = x * 2.0
        return gf.cond(x.sum() > 0, lambda u: u * 2.0, lambda u: u * 2.0 + 1.0, y)

    g = gf.trace(f, gf.TensorSpec((3,)))
    after = gf.optimize(g, "infer,(fold,simplify,cse,dce)*", verify=True)  # verify: no implicit capture
    assert _inner_ops(after).count("constant") >= 2
    _same_values(g, after)


def test_dce_sweeps_bodies_and_keeps_their_interface():
    def f(x, w):
        def body(c, xt):
            unused = gf.tanh(c) * 3.0  # dead inside the body
            del unused
            return c + xt, c * 2.0
        c, ys = gf.scan(body, x[0], x)
        dead_loop = gf.scan(lambda c, xt: (c + w, None), w, x)[0]  # a whole unused loop
        del dead_loop
        return c

    g = gf.trace(f, gf.TensorSpec((3, 2)), gf.TensorSpec((2,)))
    after = gf.optimize(g, "infer,dce", verify=True)
    assert [n.op for n in after.nodes].count("scan") == 1
    assert "tanh" not in _inner_ops(after)
    scan = next(n for n in after.nodes if n.op == "scan")
    assert len(scan.outputs) == 2 and len(scan.regions[0].results) == 2  # unused ys kept: the interface
    _same_values(g, after)


def test_fold_simplify_and_fuse_work_inside_bodies():
    def f(x, w, b):
        def body(c, xt):
            k = gf.constant(np.array(3.0, np.float32)) * 2.0  # folds
            y = (c @ w + b) * 1.0  # x*1 simplifies, matmul+add fuses to linear
            return gf.relu(y) + xt * k, None
        return gf.scan(body, x[0], x)[0]

    g = gf.trace(f, gf.TensorSpec((3, 4)), gf.TensorSpec((4, 4)), gf.TensorSpec((4,)))
    after = gf.optimize(g, "infer,(fold,simplify,cse,dce)*,fuse", verify=True)
    inner = _inner_ops(after)
    assert "linear" in inner and "matmul" not in inner and inner.count("mul") == 1
    _same_values(g, after)


def test_decompose_reaches_composites_in_a_body_and_jax_runs_it():
    def f(x):
        return gf.scan(lambda c, xt: (gf.layer_norm(c + xt), None), x[0], x)[0]

    g = gf.trace(f, gf.TensorSpec((3, 4)))
    assert "layer_norm" in _inner_ops(g)
    after = gf.optimize(g, "infer,decompose", verify=True)
    assert all(gf.ops.get_op(n.op).decompose is None for n in after.walk() if n.op != "yield")
    _same_values(g, after)


def test_infer_rechecks_region_types():
    g = gf.trace(lambda x: gf.scan(lambda c, xt: (c + xt, None), x[0], x)[0], gf.TensorSpec((3, 2)))
    text = str(g).replace("%2: f32[2] = scan", "%2: f32[3] = scan")
    assert text != str(g)
    bad = gf.parse(text, verify=False)
    try:
        gf.optimize(bad, "infer")
    except gf.PassError as exc:
        assert "scan" in str(exc)
    else:
        raise AssertionError("infer accepted a scan whose result type disagrees with its carry")
