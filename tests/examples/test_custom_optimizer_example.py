"""examples/custom_optimizer.py: the hand-written Lion matches its update rule and trains in the Trainer."""
from __future__ import annotations

import pytest

from example_helpers import load_example

pytest.importorskip("jax")
pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")


def test_lion_update_rule():
    import jax.numpy as jnp
    import numpy as np

    lion = load_example("custom_optimizer").lion
    opt = lion(0.1, b1=0.9, b2=0.99, weight_decay=0.5)
    params = {"w": jnp.array([1.0, -2.0, 0.5])}
    state = opt.init(params)
    g = {"w": jnp.array([0.3, 0.2, -1.0])}
    updates, state = opt.update(g, state, params)
    # m = 0: direction sign(0.1 g) = sign(g); update -lr (sign(g) + wd * w)
    np.testing.assert_allclose(updates["w"], -0.1 * (np.sign(g["w"]) + 0.5 * params["w"]), rtol=1e-6)
    np.testing.assert_allclose(state.momentum["w"], 0.01 * g["w"], rtol=1e-6)
    updates, _ = opt.update({"w": jnp.array([-0.001, 0.0, 0.0])}, state, params)
    # the momentum dominates a tiny opposite gradient: sign(0.9 * 0.003 - 0.1 * 0.001) > 0
    assert float(updates["w"][0]) == pytest.approx(-0.1 * (1 + 0.5))


def test_custom_optimizer_example_quick(capsys):
    assert load_example("custom_optimizer").main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "lion :" in out and "adam :" in out, out
    assert "predictions identical True" in out
