"""Property test: random programs through the default pipeline stay valid, equal and idempotent."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import graphforge as gf
from graphforge.passes import PassManager
from gf_testutil import zip_outputs

CONSTS = [0.0, 1.0, 2.0, 0.5]
UNARY = ["neg", "tanh", "relu", "T", "flat", "exp_small"]
BINARY = ["add", "sub", "mul", "div"]

step = st.one_of(
    st.tuples(st.just("u"), st.sampled_from(UNARY), st.integers(0, 50)),
    st.tuples(st.just("b"), st.sampled_from(BINARY), st.integers(0, 50), st.integers(0, 50)),
    st.tuples(st.just("c"), st.sampled_from(BINARY), st.integers(0, 50), st.sampled_from(CONSTS), st.booleans()),
)


def _program(steps):
    def fn(x):
        vals = [x, gf.tanh(x)]
        for s in steps:
            if s[0] == "u":
                a = vals[s[2] % len(vals)]
                if s[1] == "T":
                    r = a.T
                elif s[1] == "flat":
                    r = a.reshape(-1).reshape(3, 3)
                elif s[1] == "exp_small":
                    r = gf.exp(gf.tanh(a))
                else:
                    r = getattr(gf, s[1])(a)
            elif s[0] == "b":
                a, b = vals[s[2] % len(vals)], vals[s[3] % len(vals)]
                r = getattr(gf, s[1])(a, gf.tanh(b) + 2.0) if s[1] == "div" else getattr(gf, s[1])(a, b)
            else:
                a, c = vals[s[2] % len(vals)], s[3]
                if s[1] == "div" and (c == 0.0 or s[4]):
                    c = 2.0
                r = getattr(gf, s[1])(a, c) if s[4] else getattr(gf, s[1])(c, a) if s[1] != "div" else a / c
            vals.append(r)
        return vals[-1], vals[len(vals) // 2]
    return fn


@settings(max_examples=40, deadline=None)
@given(st.lists(step, min_size=1, max_size=25))
def test_default_pipeline_preserves_random_programs(steps):
    g = gf.trace(_program(steps), gf.TensorSpec((3, 3), "float32"))
    pm = PassManager("default", verify=True)
    out = pm.run(g)
    assert len(out.nodes) <= len(g.nodes)
    x = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
    for a, b in zip_outputs(gf.run(g, {"x": x}), gf.run(out, {"x": x})):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    again = PassManager("default", verify=True)
    assert str(again.run(out)) == str(out)
    assert not any(r.changed for r in again.report.records)
