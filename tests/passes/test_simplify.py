"""simplify: algebraic identities, transpose/reshape chains, no-op shape ops, static dim_size."""
import numpy as np

import graphforge as gf
from graphforge.passes import optimize


def test_simplify_on_traced_model_keeps_values():
    def f(x):
        y = (x * 1.0 + 0.0).T.T
        return gf.neg(gf.neg(y.reshape(-1, 2).reshape(x.shape[0], 4))) - 0.0
    g = gf.trace(f, gf.TensorSpec(("batch", 4), "float32"))
    g2 = optimize(g, "simplify,dce", verify=True)
    # Everything cancels except one identity that keeps the output distinct from the input (the
    # rules run consumers first, so the innermost one, x * 1, is the one left).
    assert g2.op_counts() == {"constant": 1, "mul": 1}, str(g2)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(gf.run(g2, {"x": x})[0], x)
    np.testing.assert_array_equal(gf.run(g, {"x": x})[0], x)
