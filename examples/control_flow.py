"""Control flow in the graph: a Newton iteration (``gf.while_loop``), a cumulative product
(``gf.scan``) and a piecewise function (``gf.cond``), each traced once into one graph with regions,
run on the NumPy reference and on JAX (and in onnxruntime when the ONNX back end lowers the region
ops), with its text IR read back exactly; plus gradients through the scan and the bounded loop.

Run: ``python examples/control_flow.py`` (``--quick`` runs the same checks; it is already quick).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import graphforge as gf


def newton_sqrt(a, max_iterations=None):
    """sqrt(a) elementwise by Newton's method x <- (x + a/x) / 2, until every step is below 1e-12."""
    def cond(state):
        x, step = state
        return step > 1e-12

    def body(state):
        x, _ = state
        new = (x + a / x) * 0.5
        return new, gf.abs(new - x).max()

    x, _ = gf.while_loop(cond, body, (a * 0.5 + 0.5, gf.constant(np.array(1.0), "float64")),
                         max_iterations=max_iterations)
    return x


def cumprod(x):
    """The cumulative product along axis 0, as a scan whose carry is the running product."""
    def step(carry, row):
        carry = carry * row
        return carry, carry
    _, ys = gf.scan(step, gf.ones((x.shape[1],), x.dtype), x)
    return ys


def piecewise(x, t):
    """x**2 where mean(x) < t else 2*t*x - t**2 (a Huber-like join), chosen at run time."""
    return gf.cond(x.mean() < t, lambda u: u * u, lambda u: u * (t * 2.0) - t * t, x)


def programs():
    """(name, traced graph, inputs, expected outputs) for the three programs."""
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 4.0, (5,))
    x = rng.uniform(0.5, 1.5, (4, 3))
    p = rng.standard_normal(6)
    t = np.array(0.25)
    out = []
    g = gf.trace(newton_sqrt, gf.TensorSpec(("n",), "float64"))
    out.append(("newton_sqrt", g, [a], [np.sqrt(a)]))
    g = gf.trace(cumprod, gf.TensorSpec(("t", 3), "float64"))
    out.append(("cumprod", g, [x], [np.cumprod(x, axis=0)]))
    g = gf.trace(piecewise, gf.TensorSpec((6,), "float64"), gf.TensorSpec((), "float64"))
    want = p * p if p.mean() < t else 2 * t * p - t * t
    out.append(("piecewise", g, [p, t], [want]))
    return out


def backends():
    names = ["reference", "jax"]
    try:
        from graphforge.runtimes import onnx as gf_onnx
        if all(op in gf_onnx.LOWERINGS for op in ("cond", "scan", "while_loop")):
            names.append("onnxruntime")
    except ImportError:
        pass
    return names


def check(verbose=True) -> list[str]:
    """Run every program on every available back end; return the list of failures."""
    failures = []
    for name, g, inputs, want in programs():
        if str(gf.parse(str(g))) != str(g):
            failures.append(f"{name}: the text IR does not round-trip")
        for backend in backends():
            got = gf.run(g, inputs, backend=backend)
            ok = all(np.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(got, want))
            if verbose:
                print(f"{name:12s} {backend:12s} {'ok' if ok else 'MISMATCH'}")
            if not ok:
                failures.append(f"{name} on {backend}")
    # Gradients: d sum(cumprod(x)) / dx through the scan, and through a bounded Newton loop.
    x = np.random.default_rng(1).uniform(0.5, 1.5, (4, 3))
    g = gf.trace(lambda v: cumprod(v).sum(), gf.TensorSpec((4, 3), "float64"))
    d = gf.run(gf.grad(g, wrt=["v"]), [x], backend="jax")[1]
    want = np.array([[np.sum([np.prod(x[:k + 1, j]) / x[i, j] for k in range(i, 4)]) for j in range(3)]
                     for i in range(4)])
    if not np.allclose(d, want, rtol=1e-9):
        failures.append("gradient of cumprod")
    a = np.array([2.0, 9.0])
    g = gf.trace(lambda v: newton_sqrt(v, max_iterations=40).sum(), gf.TensorSpec((2,), "float64"))
    d = gf.run(gf.grad(g, wrt=["v"]), [a], backend="jax")[1]
    if not np.allclose(d, 0.5 / np.sqrt(a), rtol=1e-6):
        failures.append("gradient of the bounded Newton iteration")
    if verbose:
        print("gradients", "ok" if not failures else failures)
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same checks (kept for the test harness)")
    parser.parse_args(argv)
    print(programs()[1][1])
    failures = check()
    if failures:
        print("FAILED:", "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
