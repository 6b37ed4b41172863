"""nn.RNN / nn.LSTM / nn.GRU and their cells against PyTorch: a torch state dict loads by name and
gives torch's outputs, final states and gradients in float64 (rtol 1e-5) for every num_layers ×
bidirectional × batch_first combination, at two sequence lengths of one symbolic trace (the
``gf.scan`` loop) and of the unrolled form, on every back end. Fixtures:
tests/fixtures/make_sequence_fixtures.py (this test never imports torch)."""
from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
COMBOS = list(itertools.product(sorted(LAYERS), (1, 2), (False, True), (False, True)))
LENGTHS = (4, 6)
TOL = dict(rtol=1e-5, atol=1e-10)


@pytest.fixture(scope="module")
def fx():
    with np.load(os.path.join(FIXTURES, "seq_rnn.npz")) as z:
        return {k: z[k] for k in z.files}


def _sd(fx, prefix):
    return {k[len(prefix) + 4:]: v for k, v in fx.items() if k.startswith(f"{prefix}/sd/")}


class Net(nn.Module):
    """The layer under ``net`` (so its parameters are ``net.weight_ih_l0`` …) with flat outputs
    ``out, h_n[, c_n]`` and, with ``loss=True``, the fixtures' loss as an extra first output."""

    def __init__(self, layer, with_state: bool, loss: bool = False, lengths: bool = False):
        super().__init__()
        self.net, self.with_state, self.loss, self.lengths = layer, with_state, loss, lengths

    def forward(self, x, *rest):
        rest = list(rest)
        lengths = rest.pop() if self.lengths else None
        hx = None
        if self.with_state:
            hx = tuple(rest) if isinstance(self.net, nn.LSTM) else rest[0]
        out, state = self.net(x, hx, lengths=lengths)
        states = list(state) if isinstance(state, tuple) else [state]
        if self.loss:
            total = gf.sum(out * out)
            for s in states:
                total = total + gf.sum(s * s)
            return total
        return (out, *states)


def _layer(fx, mode, case, **kw):
    layer = LAYERS[mode](3, 4, dtype="float64", **kw)
    layer.load_state_dict(_sd(fx, f"{mode}/{case}"))
    return layer


def _specs(mode, layers, bi, bf, seq):
    x = gf.TensorSpec(("batch", seq, 3) if bf else (seq, "batch", 3), "float64", name="x")
    n = layers * (2 if bi else 1)
    states = [gf.TensorSpec((n, "batch", 4), "float64", name=nm) for nm in ("h0", "c0")[: 2 if mode == "lstm" else 1]]
    return [x] + (states if layers == 2 else [])


def _feeds(fx, key, mode, layers):
    return [fx[f"{key}/x"]] + ([fx[f"{key}/{nm}"] for nm in ("h0", "c0")[: 2 if mode == "lstm" else 1]]
                               if layers == 2 else [])


def _expected(fx, key, mode):
    return [fx[f"{key}/{n}"] for n in ("out", "h_n", "c_n")[: 3 if mode == "lstm" else 2]]


# JAX compiles each combination at each length (the suite's largest cost here): the default tier
# runs, per mode, two combinations that between them take every value of every flag; the slow tier
# (make test-slow) runs all 24. The reference and onnxruntime run every combination.
_JAX_FAST = {(1, False, True), (2, True, False)}
BACKEND_COMBOS = [pytest.param(b, *c, marks=[pytest.mark.slow] if b == "jax" and c[1:] not in _JAX_FAST else [])
                  for b in ("reference", "jax", "onnxruntime") for c in COMBOS]


@pytest.mark.parametrize("backend, mode, layers, bi, bf", BACKEND_COMBOS)
def test_scan_layer_matches_pytorch_at_every_length(fx, backend, mode, layers, bi, bf):
    case = f"L{layers}_bi{int(bi)}_bf{int(bf)}"
    layer = _layer(fx, mode, case, num_layers=layers, bidirectional=bi, batch_first=bf)
    g = gf.trace(Net(layer, layers == 2), *_specs(mode, layers, bi, bf, "seq"), training=False)
    assert "scan" in g.op_counts()
    for t in LENGTHS:
        key = f"{mode}/{case}/{t}"
        for got, want in zip(gf.run(g, _feeds(fx, key, mode, layers), backend=backend), _expected(fx, key, mode)):
            np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("mode, layers, bi, bf", COMBOS)
def test_unrolled_layer_matches_pytorch(fx, mode, layers, bi, bf):
    case = f"L{layers}_bi{int(bi)}_bf{int(bf)}"
    layer = _layer(fx, mode, case, num_layers=layers, bidirectional=bi, batch_first=bf, unroll=True)
    key = f"{mode}/{case}/4"
    g = gf.trace(Net(layer, layers == 2), *_specs(mode, layers, bi, bf, 4), training=False)
    assert "scan" not in g.op_counts()
    for got, want in zip(gf.run(g, _feeds(fx, key, mode, layers), backend="onnxruntime"), _expected(fx, key, mode)):
        np.testing.assert_allclose(got, want, **TOL)


def _check_grads(fx, key, g, feeds, backend="jax"):
    tg = gf.grad(g, wrt=["x"] + [n for n in g.params if n.startswith("net.")])
    got = dict(zip(tg.output_names, gf.run(tg, feeds, backend=backend)))
    np.testing.assert_allclose(got["grad:x"], fx[f"{key}/grad_x"], **TOL)
    names = [k[len(key) + 6:] for k in fx if k.startswith(f"{key}/grad/")]
    assert names
    for name in names:
        np.testing.assert_allclose(got[f"grad:net.{name}"], fx[f"{key}/grad/{name}"], err_msg=name, **TOL)


# every combination's gradient graph is checked against PyTorch in the default tier: on JAX for the
# fast combinations above, on the reference back end for the others (on JAX in the slow tier)
GRAD_COMBOS = ([pytest.param("jax", *c) for c in COMBOS if c[1:] in _JAX_FAST]
               + [pytest.param("reference", *c) for c in COMBOS if c[1:] not in _JAX_FAST]
               + [pytest.param("jax", *c, marks=pytest.mark.slow) for c in COMBOS if c[1:] not in _JAX_FAST])


@pytest.mark.parametrize("backend, mode, layers, bi, bf", GRAD_COMBOS)
def test_gradients_match_pytorch(fx, backend, mode, layers, bi, bf):
    case = f"L{layers}_bi{int(bi)}_bf{int(bf)}"
    layer = _layer(fx, mode, case, num_layers=layers, bidirectional=bi, batch_first=bf)
    g = gf.trace(Net(layer, layers == 2, loss=True), *_specs(mode, layers, bi, bf, "seq"), training=False)
    for t in LENGTHS:
        key = f"{mode}/{case}/{t}"
        _check_grads(fx, key, g, _feeds(fx, key, mode, layers), backend=backend)


@pytest.mark.parametrize("mode, layers, bi, bf", [c for c in COMBOS if c[1] == 2])
def test_unrolled_gradients_match_pytorch(fx, mode, layers, bi, bf):
    case = f"L{layers}_bi{int(bi)}_bf{int(bf)}"
    layer = _layer(fx, mode, case, num_layers=layers, bidirectional=bi, batch_first=bf, unroll=True)
    g = gf.trace(Net(layer, True, loss=True), *_specs(mode, layers, bi, bf, 4), training=False)
    key = f"{mode}/{case}/4"
    _check_grads(fx, key, g, _feeds(fx, key, mode, layers), backend="reference")


@pytest.mark.parametrize("mode", sorted(LAYERS))
@pytest.mark.parametrize("unroll", [False, True])
def test_lengths_match_pack_padded_sequence(fx, mode, unroll):
    layer = _layer(fx, mode, "packed", num_layers=2, bidirectional=True, batch_first=True, unroll=unroll)
    seq = 5 if unroll else "seq"
    specs = [gf.TensorSpec(("batch", seq, 3), "float64", name="x"), gf.TensorSpec(("batch",), "int64", name="lengths")]
    g = gf.trace(Net(layer, False, lengths=True), *specs, training=False)
    feeds = [fx[f"{mode}/packed/x"], fx[f"{mode}/packed/lengths"]]
    for backend in ("jax", "onnxruntime"):
        for got, want in zip(gf.run(g, feeds, backend=backend), _expected(fx, f"{mode}/packed", mode)):
            np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("mode", sorted(CELLS))
def test_cells_match_pytorch(fx, mode):
    cell = CELLS[mode](3, 4, dtype="float64")
    cell.load_state_dict(_sd(fx, f"cell/{mode}"))
    x, h, c = (fx[f"cell/{mode}/{n}"] for n in "xhc")
    if mode == "lstm":
        g = gf.trace(lambda x, h, c: cell(x, (h, c)), *(gf.TensorSpec(a.shape, "float64") for a in (x, h, c)))
        got = gf.run(g, [x, h, c], backend="onnxruntime")
        want = [fx["cell/lstm/h1"], fx["cell/lstm/c1"]]
    else:
        g = gf.trace(cell, *(gf.TensorSpec(a.shape, "float64") for a in (x, h)))
        got, want = gf.run(g, [x, h], backend="onnxruntime"), [fx[f"cell/{mode}/h1"]]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, **TOL)


def test_unbatched_input_gives_unbatched_states(fx):
    layer = _layer(fx, "gru", "L2_bi1_bf0", num_layers=2, bidirectional=True)
    g = gf.trace(Net(layer, True), gf.TensorSpec(("seq", 3), "float64"), gf.TensorSpec((4, 4), "float64"))
    key = "gru/L2_bi1_bf0/6"
    out, h_n = gf.run(g, [fx[f"{key}/x"][:, 1], fx[f"{key}/h0"][:, 1]], backend="jax")
    np.testing.assert_allclose(out, fx[f"{key}/out"][:, 1], **TOL)
    np.testing.assert_allclose(h_n, fx[f"{key}/h_n"][:, 1], **TOL)


def test_parameter_names_and_shapes_are_pytorchs(fx):
    layer = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    ours = {k: v.shape for k, v in layer.state_dict().items()}
    assert ours == {k: v.shape for k, v in _sd(fx, "lstm/L2_bi1_bf0").items()}
    bound = 1 / np.sqrt(4)
    assert all(np.abs(v).max() <= bound for v in layer.state_dict().values())


def test_dropout_acts_between_layers_in_training_mode_only():
    layer = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    train = gf.trace(Net(layer, False), gf.TensorSpec(("seq", "batch", 3)), training=True)
    evalg = gf.trace(Net(layer, False), gf.TensorSpec(("seq", "batch", 3)), training=False)
    assert train.op_counts().get("dropout") == 1 and "dropout" not in evalg.op_counts()
    a = gf.run(train, {"x": x, "rng": np.uint32(1)}, backend="jax")[0]
    b = gf.run(train, {"x": x, "rng": np.uint32(2)}, backend="jax")[0]
    assert not np.allclose(a, b)


@pytest.mark.parametrize("make, match", [
    (lambda: nn.LSTM(0, 4), "input_size"),
    (lambda: nn.RNN(3, 4, nonlinearity="gelu"), "nonlinearity"),
    (lambda: nn.RNNCell(3, 4, nonlinearity="gelu"), "nonlinearity"),
])
def test_bad_configuration_is_a_shape_error(make, match):
    with pytest.raises(gf.ShapeError, match=match):
        make()


@pytest.mark.parametrize("fn, specs, match", [
    (lambda x: nn.LSTM(3, 4)(x)[0], [(5, 2, 6)], "input_size=3"),
    (lambda x, h: nn.GRU(3, 4, num_layers=2)(x, h)[0], [(5, 2, 3), (1, 2, 4)], "initial hidden state"),
    (lambda x: nn.LSTM(3, 4, unroll=True)(x)[0], [("seq", 2, 3)], "static sequence length"),
])
def test_bad_input_names_what_is_wrong(fn, specs, match):
    with pytest.raises(gf.ShapeError, match=match):
        gf.trace(fn, *(gf.TensorSpec(s) for s in specs))


@pytest.mark.parametrize("per_layer", [False, True], ids=["stacked", "per_layer"])
@pytest.mark.parametrize("mode", sorted(LAYERS))
def test_step_by_step_equals_the_whole_sequence(fx, mode, per_layer):
    """``layer.step`` (what in-graph decoding calls) walks the same recurrence as ``layer(x)``, with
    the state stacked (num_layers, batch, H) or as a list of per-layer (batch, H) tensors."""
    layer = _layer(fx, mode, "L2_bi0_bf0", num_layers=2, unroll=True)
    key = f"{mode}/L2_bi0_bf0/4"
    n_states = 2 if mode == "lstm" else 1
    unstack = (lambda t: [gf.squeeze(p, [0]) for p in gf.split(t, 2, 0)]) if per_layer else (lambda t: t)
    restack = (lambda ts: gf.stack(ts, 0)) if per_layer else (lambda t: t)

    def stepped(x, *hx):
        hx = [unstack(h) for h in hx]
        state = tuple(hx) if mode == "lstm" else hx[0]
        ys = []
        for t in range(4):
            y, state = layer.step(x[t], state)
            ys.append(y)
            assert isinstance(state[0] if mode == "lstm" else state, list) == per_layer
        return (gf.stack(ys, 0), *(restack(s) for s in (state if mode == "lstm" else (state,))))

    specs = [gf.TensorSpec((4, "batch", 3), "float64")] + [gf.TensorSpec((2, "batch", 4), "float64")] * n_states
    g = gf.trace(stepped, *specs)
    backend = "reference" if per_layer else "jax"
    for got, want in zip(gf.run(g, _feeds(fx, key, mode, 2), backend=backend), _expected(fx, key, mode)):
        np.testing.assert_allclose(got, want, **TOL)


def test_a_per_layer_step_state_of_the_wrong_length_is_a_shape_error():
    layer = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(gf.ShapeError, match="one per layer"):
        gf.trace(lambda x, h: layer.step(x, ([h], [h]))[0], gf.TensorSpec((2, 3)), gf.TensorSpec((2, 4)))


def test_a_bidirectional_layer_cannot_step():
    layer = nn.GRU(3, 4, bidirectional=True)
    with pytest.raises(gf.ShapeError, match="bidirectional"):
        gf.trace(lambda x, h: layer.step(x, h)[0], gf.TensorSpec((2, 3)), gf.TensorSpec((2, 2, 4)))
