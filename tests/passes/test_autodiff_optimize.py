"""gf.grad runs the default pipeline: smaller gradient graphs, identical outputs."""
import numpy as np

import graphforge as gf
from graphforge import nn
from gf_testutil import zip_outputs


def _loss_graph():
    net = nn.seq().add(nn.Linear(6, 12)).add_fn(gf.tanh).add(nn.Linear(12, 12)).add_fn(gf.relu).add(nn.Linear(12, 3))

    def loss(x, y):
        return nn.functional.cross_entropy(net(x), y)
    return gf.trace(loss, gf.TensorSpec(("batch", 6), "float32"), gf.TensorSpec(("batch",), "int64"))


def test_grad_is_optimised_by_default_with_outputs_preserved():
    g = _loss_graph()
    raw = gf.grad(g, optimize=False)
    opt = gf.grad(g)
    assert len(opt.nodes) < len(raw.nodes)
    assert opt.output_names == raw.output_names
    assert [o.type for o in opt.outputs] == [o.type for o in raw.outputs]
    assert len({id(o) for o in opt.outputs}) == len(opt.outputs)
    opt.verify()
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((5, 6)).astype(np.float32), "y": rng.integers(0, 3, 5)}
    for a, b in zip_outputs(gf.run(raw, inputs), gf.run(opt, inputs)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_unused_gradients_and_keep_outputs():
    def f(x):
        return {"loss": (x * x).sum(), "aux": gf.exp(x)}
    g = gf.trace(f, gf.TensorSpec((3,), "float32"))
    raw = gf.grad(g, wrt=["x"], keep_outputs=True, optimize=False)
    opt = gf.grad(g, wrt=["x"], keep_outputs=True)
    assert opt.output_names == raw.output_names == ["loss", "grad:x", "aux"]
    x = np.array([1.0, -2.0, 3.0], np.float32)
    for a, b in zip_outputs(gf.run(raw, {"x": x}), gf.run(opt, {"x": x})):
        np.testing.assert_allclose(b, a, rtol=1e-6)
    np.testing.assert_allclose(gf.run(opt, {"x": x})[1], 2 * x)


def test_pipeline_string_is_accepted():
    g = _loss_graph()
    opt = gf.grad(g, optimize="cse,dce")
    assert "linear" in opt.op_counts() and opt.output_names[0] == g.output_names[0]
