"""examples/control_flow.py: the Newton iteration (while_loop), cumulative product (scan) and
piecewise function (cond) agree with NumPy on every back end that lowers them, their text IR
round-trips, and the gradients through the scan and the bounded loop are right."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from example_helpers import load_example

pytest.importorskip("jax")


@pytest.fixture(scope="module")
def example():
    return load_example("control_flow")


def test_programs_agree_with_numpy_on_every_backend(example):
    assert example.check(verbose=False) == []


@pytest.mark.parametrize("name", ["newton_sqrt", "cumprod", "piecewise"])
def test_each_program_is_one_graph_with_regions_and_round_trips(example, name):
    (_, g, inputs, want), = [p for p in example.programs() if p[0] == name]
    op = {"newton_sqrt": "while_loop", "cumprod": "scan", "piecewise": "cond"}[name]
    assert op in [n.op for n in g.nodes] and any(n.regions for n in g.nodes)
    text = str(g)
    assert str(gf.parse(text)) == text
    for backend in ("reference", "jax"):
        np.testing.assert_allclose(gf.run(gf.parse(text), inputs, backend=backend)[0], want[0], rtol=1e-9)
    opt = gf.optimize(g, verify=True)
    np.testing.assert_allclose(gf.run(opt, inputs, backend="jax")[0], want[0], rtol=1e-9)


def test_newton_symbolic_size_runs_at_other_sizes(example):
    g = example.programs()[0][1]
    a = np.linspace(1.0, 100.0, 9)
    np.testing.assert_allclose(gf.run(g, [a], backend="jax")[0], np.sqrt(a), rtol=1e-12)
