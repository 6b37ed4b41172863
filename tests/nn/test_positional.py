"""nn.PositionalEncoding, nn.LearnedPositionalEmbedding and nn.RotaryEmbedding: one symbolic trace
serves every sequence length, and the values equal PyTorch's (the tutorial's sinusoidal table and
rotary embeddings computed with torch; fixtures from tests/fixtures/make_sequence_fixtures.py) on
every back end, in float64."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
BACKENDS = ["reference", "jax", "onnxruntime"]
LENGTHS = (4, 9)


@pytest.fixture(scope="module")
def fx():
    with np.load(os.path.join(FIXTURES, "seq_positional.npz")) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d", [6, 7])
def test_sinusoidal_encoding_matches_the_pytorch_tutorial(fx, backend, d):
    g = gf.trace(nn.PositionalEncoding(d), gf.TensorSpec(("batch", "seq", d), "float64"))
    rng = np.random.default_rng(d)
    for n in LENGTHS:
        x = rng.standard_normal((2, n, d))
        np.testing.assert_allclose(gf.run(g, [x], backend=backend)[0], x + fx[f"pe/{d}/{n}"], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(nn.sinusoidal_table(9, d), fx[f"pe/{d}/9"], rtol=1e-12)


def test_sinusoidal_encoding_seq_first_and_scaled():
    g = gf.trace(nn.PositionalEncoding(6, batch_first=False, scale=2.0), gf.TensorSpec(("seq", "batch", 6), "float64"))
    x = np.random.default_rng(0).standard_normal((5, 3, 6))
    out = gf.run(g, [x], backend="onnxruntime")[0]
    np.testing.assert_allclose(out, 2 * x + nn.sinusoidal_table(5, 6)[:, None], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["half", "pairs"])
def test_rotary_embedding_matches_torch(fx, backend, layout):
    rope = nn.RotaryEmbedding(6, interleaved=layout == "pairs")
    g = gf.trace(lambda x: rope(x, offset=2), gf.TensorSpec(("batch", 3, "seq", 8), "float64"))
    for n in LENGTHS:
        out = gf.run(g, [fx[f"rope/x/{n}"]], backend=backend)[0]
        np.testing.assert_allclose(out, fx[f"rope/{layout}/{n}"], rtol=1e-5, atol=1e-12)


def test_rotary_offset_may_be_a_run_time_scalar(fx):
    rope = nn.RotaryEmbedding(6)
    g = gf.trace(lambda x, pos: rope(x, offset=pos), gf.TensorSpec(("batch", 3, "seq", 8), "float64"),
                 gf.TensorSpec((), "int64"))
    for backend in ("jax", "onnxruntime"):
        out = gf.run(g, [fx["rope/x/4"], np.int64(2)], backend=backend)[0]
        np.testing.assert_allclose(out, fx["rope/half/4"], rtol=1e-5, atol=1e-12)


def test_rotary_keeps_relative_positions():
    """q·k after rotation depends on the position difference only (the point of RoPE)."""
    rope = nn.RotaryEmbedding(8, seq_axis=1)
    g = gf.trace(lambda x, off: rope(x, offset=off), gf.TensorSpec((1, "seq", 8), "float64"), gf.TensorSpec((), "int64"))
    rng = np.random.default_rng(2)
    q, k = rng.standard_normal(8), rng.standard_normal(8)
    x = np.stack([q, k])[None]                                   # q at position off, k at off + 1
    dots = [float(np.dot(*gf.run(g, [x, np.int64(off)], backend="jax")[0][0])) for off in (0, 5, 11)]
    np.testing.assert_allclose(dots, dots[0], rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_learned_positions_add_the_first_rows(backend):
    layer = nn.LearnedPositionalEmbedding(16, 4)
    g = gf.trace(layer, gf.TensorSpec(("batch", "seq", 4)))
    table = g.params["weight"]
    for n in (1, 5, 16):
        x = np.random.default_rng(n).standard_normal((2, n, 4)).astype(np.float32)
        np.testing.assert_allclose(gf.run(g, [x], backend=backend)[0], x + table[:n], rtol=1e-6)


def test_learned_positions_past_max_len_are_an_input_error():
    g = gf.trace(nn.LearnedPositionalEmbedding(8, 4), gf.TensorSpec(("batch", "seq", 4)))
    with pytest.raises(gf.InputError, match="seq <= 8"):
        gf.run(g, [np.zeros((1, 9, 4), np.float32)])


@pytest.mark.parametrize("make, spec, match", [
    (lambda: nn.RotaryEmbedding(5), None, "even dim"),
    (lambda: nn.PositionalEncoding(0), None, "d_model"),
    (lambda: nn.RotaryEmbedding(8), (2, 4, 6), "at least 8"),
    (lambda: nn.PositionalEncoding(6), (2, 4, 5), "d_model=6"),
])
def test_bad_configuration_or_input_is_a_shape_error(make, spec, match):
    with pytest.raises(gf.ShapeError, match=match):
        layer = make()
        gf.trace(layer, gf.TensorSpec(spec))
