"""nn.TransformerDecoderLayer / nn.TransformerDecoder against PyTorch: a torch state dict (packed
in-projections, PyTorch names) loads by name and reproduces torch's eval output in float64, with a
causal target mask and a memory padding mask, at two target lengths of one symbolic trace, on every
back end. Fixtures: tests/fixtures/make_sequence_fixtures.py (this test never imports torch)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
CASES = {"post": dict(norm_first=False, activation="relu"), "pre": dict(norm_first=True, activation="gelu")}
LENGTHS = (3, 7)


@pytest.fixture(scope="module")
def fx():
    with np.load(os.path.join(FIXTURES, "seq_decoder.npz")) as z:
        return {k: z[k] for k in z.files}


class Decoder(nn.Module):
    """Mirror of the fixture's torch.nn.TransformerDecoder(layer, 2, norm=LayerNorm(8))."""

    def __init__(self, explicit_mask: bool, **kw):
        super().__init__()
        layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.1, dtype="float64", **kw)
        self.dec = nn.TransformerDecoder(layer, 2, norm=nn.LayerNorm(8, dtype="float64"))
        self.explicit_mask = explicit_mask

    def forward(self, tgt, memory, memory_pad):
        if self.explicit_mask:  # PyTorch's spelling: a (tgt, tgt) mask, True above the diagonal
            n = tgt.shape[1]
            mask = gf.triu(gf.ones((n, n)), 1) > 0
            return self.dec(tgt, memory, tgt_mask=mask, memory_key_padding_mask=memory_pad)
        return self.dec(tgt, memory, memory_key_padding_mask=memory_pad, tgt_is_causal=True)


def _graph(fx, case, explicit_mask=False):
    model = Decoder(explicit_mask, **CASES[case])
    model.dec.load_state_dict({k[len(case) + 4:]: v for k, v in fx.items() if k.startswith(f"{case}/sd/")})
    return gf.trace(model, gf.TensorSpec(("batch", "tgt", 8), "float64"), gf.TensorSpec(("batch", "mem", 8), "float64"),
                    gf.TensorSpec(("batch", "mem"), "bool"), training=False)


@pytest.mark.parametrize("backend", ["reference", "jax", "onnxruntime"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_decoder_matches_pytorch_at_every_length(fx, case, backend):
    g = _graph(fx, case)
    assert g.inputs[0].type.shape == ("batch", "tgt", 8)
    for n in LENGTHS:
        feeds = [fx[f"{case}/{n}/{k}"] for k in ("tgt", "memory", "memory_pad")]
        out = gf.run(g, feeds, backend=backend)[0]
        np.testing.assert_allclose(out, fx[f"{case}/{n}/out"], rtol=1e-5, atol=1e-8)


def test_an_explicit_causal_mask_equals_tgt_is_causal(fx):
    g = _graph(fx, "post", explicit_mask=True)
    feeds = [fx[f"post/7/{k}"] for k in ("tgt", "memory", "memory_pad")]
    np.testing.assert_allclose(gf.run(g, feeds, backend="onnxruntime")[0], fx["post/7/out"], rtol=1e-5, atol=1e-8)


def test_decoder_parameter_names_are_pytorchs(fx):
    import re

    names = set(Decoder(False, **CASES["post"]).dec.state_dict())
    torch_names = {k[len("post/sd/"):] for k in fx if k.startswith("post/sd/")}
    # graphforge keeps q/k/v apart; PyTorch packs them into in_proj_*: every other name is the same
    packed = {re.sub(r"\.[qkv]_proj\.(weight|bias)$", r".in_proj_\1", n) for n in names}
    assert packed == torch_names


def test_causal_self_attention_ignores_later_positions():
    model = nn.TransformerDecoder(num_layers=1, d_model=8, nhead=2, dim_feedforward=16, dropout=0.0)
    g = gf.trace(lambda t, m: model(t, m, tgt_is_causal=True), gf.TensorSpec(("batch", "tgt", 8)),
                 gf.TensorSpec(("batch", "mem", 8)), training=False)
    rng = np.random.default_rng(0)
    tgt, mem = rng.standard_normal((1, 6, 8)).astype(np.float32), rng.standard_normal((1, 4, 8)).astype(np.float32)
    full = gf.run(g, [tgt, mem], backend="jax")[0]
    prefix = gf.run(g, [tgt[:, :4], mem], backend="jax")[0]
    np.testing.assert_allclose(prefix, full[:, :4], rtol=1e-5, atol=1e-6)


def test_training_mode_dropout_runs_at_a_symbolic_length():
    model = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.2)
    g = gf.trace(lambda t, m: model(t, m, tgt_is_causal=True), gf.TensorSpec(("batch", "tgt", 8)),
                 gf.TensorSpec(("batch", "mem", 8)), training=True)
    rng = np.random.default_rng(1)
    feeds = {"t": rng.standard_normal((2, 5, 8)).astype(np.float32), "m": rng.standard_normal((2, 3, 8)).astype(np.float32),
             "rng": np.uint32(7)}
    ref = gf.run(g, feeds)[0]
    np.testing.assert_allclose(gf.run(g, feeds, backend="jax")[0], ref, rtol=1e-4, atol=1e-5)
    assert ref.shape == (2, 5, 8) and np.isfinite(ref).all()


@pytest.mark.parametrize("bad, match", [
    (dict(activation="swish"), "activation"),
    (dict(num_layers=0), "num_layers"),
])
def test_bad_decoder_configuration_is_a_shape_error(bad, match):
    kw = dict(d_model=8, nhead=2) | bad
    with pytest.raises(gf.ShapeError, match=match):
        nn.TransformerDecoder(**kw)


def test_a_mis_sized_memory_names_the_input():
    layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16)
    with pytest.raises(gf.ShapeError, match="memory"):
        gf.trace(lambda t, m: layer(t, m), gf.TensorSpec((1, 3, 8)), gf.TensorSpec((1, 3, 6)))
