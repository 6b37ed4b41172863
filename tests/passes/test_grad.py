"""The ``grad`` pass: reverse-mode autodiff in a pipeline, like any other registered pass."""
import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.errors import PassError
from graphforge.passes import PassManager, optimize, pass_info


def _loss_graph():
    net = nn.seq().add(nn.Linear(4, 5)).add_fn(gf.tanh).add(nn.Linear(5, 1))

    def loss(x):
        return (net(x) * net(x)).mean()
    return gf.trace(loss, gf.TensorSpec(("batch", 4), "float32"))


def test_grad_pass_in_a_pipeline_equals_gf_grad():
    g = _loss_graph()
    before = str(g)
    manager = PassManager("grad,(fold,simplify,cse,dce)*,fuse", verify=True)
    out = manager.run(g)
    assert str(g) == before  # the caller's graph is untouched
    ref = gf.grad(g)
    assert out.output_names == ref.output_names == ["output"] + [f"grad:{n}" for n in g.trainable_names]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    for a, b in zip(gf.run(out, {"x": x}), gf.run(ref, {"x": x})):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # grad requires inferred types: the manager ran infer first and says why
    assert [(r.name, r.required_by) for r in manager.report.records[:2]] == [("infer", "grad"), ("grad", "")]
    assert "infer (for grad)" in str(manager.report)


def test_grad_pass_contract():
    info = pass_info("grad")
    assert not info.in_place and "typed" in info.requires


def test_grad_pass_errors_name_the_pass():
    g = gf.trace(lambda x: gf.exp(x), gf.TensorSpec((3,), "float32"))  # not a scalar
    with pytest.raises(PassError, match="pass 'grad' failed.*not a scalar"):
        optimize(g, "grad")
