"""``nn.LSTM(proj_size=...)``: PyTorch's LSTM with projections — parameter names and shapes
(``weight_hr_l{k}``), outputs and gradients against torch fixtures (float64, rtol 1e-5;
tests/fixtures/make_sequence_fixtures.py ``proj``), the ONNX export (a ``Scan``: ONNX's LSTM has no
projection), and the typed errors for a bad ``proj_size``."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.errors import ShapeError

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
TOL = dict(rtol=1e-5, atol=1e-10)
CASES = [(1, False), (1, True), (2, False), (2, True)]


@pytest.fixture(scope="module")
def fx():
    with np.load(os.path.join(FIXTURES, "seq_lstm_proj.npz")) as z:
        return {k: z[k] for k in z.files}


class Net(nn.Module):
    def __init__(self, layer, loss: bool = False):
        super().__init__()
        self.net, self.loss = layer, loss

    def forward(self, x, h0, c0):
        out, (h, c) = self.net(x, (h0, c0))
        if self.loss:
            return gf.sum(out * out) + gf.sum(h * h) + gf.sum(c * c)
        return out, h, c


def _net(fx, layers, bi, loss=False):
    layer = nn.LSTM(3, 5, num_layers=layers, bidirectional=bi, proj_size=2, dtype="float64")
    sd = {k.split("/sd/")[1]: v for k, v in fx.items() if k.startswith(f"L{layers}_bi{int(bi)}/sd/")}
    assert {k: v.shape for k, v in layer.state_dict().items()} == {k: v.shape for k, v in sd.items()}
    layer.load_state_dict(sd)
    n = layers * (2 if bi else 1)
    specs = [gf.TensorSpec(("seq", "batch", 3), "float64"), gf.TensorSpec((n, "batch", 2), "float64"),
             gf.TensorSpec((n, "batch", 5), "float64")]
    return gf.trace(Net(layer, loss), *specs, training=False)


@pytest.mark.parametrize("layers, bi", CASES)
def test_outputs_match_pytorch(fx, layers, bi):
    g = _net(fx, layers, bi)
    backends = ["reference", "onnxruntime"] if layers == 2 and bi else ["reference"]
    for backend in backends:
        for t in (4, 6):
            key = f"L{layers}_bi{int(bi)}/{t}"
            got = gf.run(g, [fx[f"{key}/{n}"] for n in ("x", "h0", "c0")], backend=backend)
            for a, name in zip(got, ("out", "h_n", "c_n")):
                np.testing.assert_allclose(a, fx[f"{key}/{name}"], err_msg=f"{backend} {key} {name}", **TOL)


def test_gradients_match_pytorch(fx):
    g = _net(fx, 2, True, loss=True)
    tg = gf.grad(g, wrt=["x"] + [n for n in g.params if n.startswith("net.")])
    key = "L2_bi1/4"
    got = dict(zip(tg.output_names, gf.run(tg, [fx[f"{key}/{n}"] for n in ("x", "h0", "c0")], backend="jax")))
    np.testing.assert_allclose(got["grad:x"], fx[f"{key}/grad_x"], **TOL)
    names = [k[len(key) + 6:] for k in fx if k.startswith(f"{key}/grad/")]
    assert "weight_hr_l1_reverse" in names
    for name in names:
        np.testing.assert_allclose(got[f"grad:net.{name}"], fx[f"{key}/grad/{name}"], err_msg=name, **TOL)


def test_projected_layer_exports_as_a_scan_and_steps():
    m = nn.LSTM(4, 6, num_layers=2, proj_size=3)
    g = gf.trace(lambda x: m(x)[0], gf.TensorSpec(("seq", "batch", 4)), training=False)
    ops = {n.op_type for n in gf.to_onnx(g).graph.node}
    assert "Scan" in ops and "LSTM" not in ops
    x = np.random.default_rng(0).standard_normal((5, 2, 4)).astype(np.float32)
    np.testing.assert_allclose(gf.run(g, [x], backend="onnxruntime")[0], gf.run(g, [x], backend="reference")[0],
                               rtol=1e-5, atol=1e-6)
    # step() carries h (num_layers, batch, proj_size) and c (num_layers, batch, hidden_size)
    s = gf.trace(lambda xt, h, c: (lambda y, st: (y, *st))(*m.step(xt, (h, c))), gf.TensorSpec((2, 4)),
                 gf.TensorSpec((2, 2, 3)),
                 gf.TensorSpec((2, 2, 6)), training=False)
    assert [tuple(v.type.shape) for v in s.outputs] == [(2, 3), (2, 2, 3), (2, 2, 6)]


@pytest.mark.parametrize("proj, match", [(6, "smaller than hidden_size"), (-1, ">= 0"), (1.5, ">= 0")])
def test_bad_proj_size_is_a_shape_error(proj, match):
    with pytest.raises(ShapeError, match=match):
        nn.LSTM(3, 6, proj_size=proj)
