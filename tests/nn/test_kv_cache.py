"""KV-cached decoding (graphforge/nn/kv_cache.py): prefill + one-token steps give the full causal
forward's outputs (encoder stacks, pre- and post-norm; decoder stacks with cross-attention), and
``nn.generate`` with the cache in its loop carry produces the no-cache loop's tokens on the
reference interpreter and in onnxruntime (one ONNX file)."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.errors import ShapeError

D, N = 8, 6


def _stepwise(prefill, step, x, n0=3):
    y0, cache = prefill(x[:, :n0])
    outs = [y0]
    for t in range(n0, N):
        y, cache = step(x[:, t:t + 1], cache, gf.constant(t, "int64"))
        outs.append(y)
    return gf.concat(outs, 1)


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_prefill_and_steps_equal_the_causal_forward(norm_first):
    enc = nn.TransformerEncoder(num_layers=2, d_model=D, nhead=2, dim_feedforward=16, dropout=0.0,
                                norm_first=norm_first, norm=nn.LayerNorm(D))
    spec = gf.TensorSpec((2, N, D))
    full = gf.trace(lambda x: enc(x, is_causal=True), spec, training=False)
    cached = gf.trace(lambda x: _stepwise(lambda p: enc.prefill(p, N), enc.step, x), spec, training=False)
    assert sorted(full.params) == sorted(cached.params)    # the same parameter names
    x = np.random.default_rng(0).standard_normal((2, N, D)).astype(np.float32)
    np.testing.assert_allclose(gf.run(cached, [x], backend="reference", params=full.params)[0],
                               gf.run(full, [x], backend="reference")[0], rtol=1e-5, atol=1e-5)


def test_decoder_prefill_and_steps_equal_the_causal_forward():
    dec = nn.TransformerDecoder(num_layers=2, d_model=D, nhead=2, dim_feedforward=16, dropout=0.0)
    specs = (gf.TensorSpec((2, N, D)), gf.TensorSpec((2, 4, D)))
    full = gf.trace(lambda x, m: dec(x, m, tgt_is_causal=True), *specs, training=False)
    cached = gf.trace(lambda x, m: _stepwise(lambda p: dec.prefill(p, m, N),
                                             lambda xt, c, pos: dec.step(xt, m, c, pos), x), *specs, training=False)
    rng = np.random.default_rng(1)
    feeds = [rng.standard_normal((2, N, D)).astype(np.float32), rng.standard_normal((2, 4, D)).astype(np.float32)]
    np.testing.assert_allclose(gf.run(cached, feeds, backend="reference", params=full.params)[0],
                               gf.run(full, feeds, backend="reference")[0], rtol=1e-5, atol=1e-5)


class _LM(nn.Module):
    def __init__(self, kv_cache: bool):
        super().__init__()
        self.kv_cache = kv_cache
        self.emb = nn.Embedding(16, D)
        self.pos = nn.PositionalEncoding(D)
        self.blocks = nn.TransformerEncoder(num_layers=2, d_model=D, nhead=2, dim_feedforward=16, dropout=0.0,
                                            norm_first=True)
        self.head = nn.Linear(D, 16)

    def forward(self, prompt, n_new: int):
        n = prompt.shape[1]
        if self.kv_cache:
            return nn.generate_cached(self.blocks, prompt, n_new, embed=lambda t, o: self.pos(self.emb(t), offset=o),
                                      head=self.head)[0]
        buf = gf.concat([prompt, gf.zeros((prompt.shape[0], n_new), "int64")], 1)

        def step(tok, st):
            buf, pos = st
            buf = gf.where(gf.arange(buf.shape[1])[None, :] == pos, tok[:, None], buf)
            logits = self.head(self.blocks(self.pos(self.emb(buf)), is_causal=True))
            return gf.squeeze(gf.gather(logits, gf.reshape(pos, [1]), axis=1), [1]), (buf, pos + 1)
        logits = self.head(self.blocks(self.pos(self.emb(prompt)), is_causal=True))[:, n - 1]
        return nn.generate(step, logits, (buf, gf.dim_value(n)), n_new)[0]


def test_generate_with_the_cache_gives_the_no_cache_tokens():
    spec = gf.TensorSpec((2, "plen"), "int64")
    plain = gf.trace(lambda p: _LM(False)(p, 5), spec, training=False, seed=3)
    cached = gf.trace(lambda p: _LM(True)(p, 5), spec, training=False, seed=3)
    prompt = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.int64)
    want = gf.run(plain, [prompt], backend="reference")[0]
    assert gf.run(cached, [prompt], backend="reference", params=plain.params)[0].tolist() == want.tolist()
    proto = gf.to_onnx(cached)
    assert sum(n.op_type == "Loop" for n in proto.graph.node) == 1
    assert gf.run(cached, [prompt[:, :3]], backend="onnxruntime")[0].tolist() == \
        gf.run(cached, [prompt[:, :3]], backend="reference")[0].tolist()


def test_step_errors_are_typed():
    enc = nn.TransformerEncoder(num_layers=2, d_model=D, nhead=2, dim_feedforward=16, dropout=0.0)

    def two_positions(x):
        _, cache = enc.prefill(x, N)
        return enc.step(x[:, :2], cache, gf.constant(2, "int64"))[0]

    def wrong_cache(x):
        _, cache = enc.prefill(x, N)
        return enc.step(x[:, :1], cache[:1], gf.constant(2, "int64"))[0]
    for fn, what in ((two_positions, "one position"), (wrong_cache, r"one \(k, v\) pair per layer")):
        with pytest.raises(ShapeError, match=what):
            gf.trace(fn, gf.TensorSpec((2, 3, D)), training=False)


class _Seq2Seq(nn.Module):
    """An encoder-decoder whose decoder generates with or without the cache (cross-attention over memory)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(16, D)
        self.pos = nn.PositionalEncoding(D)
        self.dec = nn.TransformerDecoder(num_layers=2, d_model=D, nhead=2, dim_feedforward=16, dropout=0.0)
        self.head = nn.Linear(D, 16)

    def forward(self, prompt, memory, cached: bool, n_new: int = 4):
        embed = lambda t, o: self.pos(self.emb(t), offset=o)  # noqa: E731
        if cached:
            return nn.generate_cached(self.dec, prompt, n_new, embed=embed, head=self.head, memory=memory)[0]
        buf = gf.concat([prompt, gf.zeros((prompt.shape[0], n_new), "int64")], 1)

        def step(tok, st):
            buf, pos = st
            buf = gf.where(gf.arange(buf.shape[1])[None, :] == pos, tok[:, None], buf)
            h = self.dec(embed(buf, 0), memory, tgt_is_causal=True)
            return self.head(gf.squeeze(gf.gather(h, gf.reshape(pos, [1]), axis=1), [1])), (buf, pos + 1)
        n = prompt.shape[1]
        logits = self.head(self.dec(embed(prompt, 0), memory, tgt_is_causal=True)[:, n - 1])
        return nn.generate(step, logits, (buf, gf.dim_value(n)), n_new)[0]


def test_generate_cached_with_a_decoder_reads_the_memory():
    model = _Seq2Seq()
    specs = (gf.TensorSpec((2, 3), "int64"), gf.TensorSpec((2, 5, D)))
    plain = gf.trace(lambda p, m: model(p, m, False), *specs, training=False, seed=1)
    cached = gf.trace(lambda p, m: model(p, m, True), *specs, training=False, seed=1)
    rng = np.random.default_rng(2)
    feeds = [np.array([[1, 2, 3], [4, 5, 6]], np.int64), rng.standard_normal((2, 5, D)).astype(np.float32)]
    want = gf.run(plain, feeds, backend="reference")[0]
    assert gf.run(cached, feeds, backend="reference", params=plain.params)[0].tolist() == want.tolist()
    other = [feeds[0], rng.standard_normal((2, 5, D)).astype(np.float32)]  # the tokens depend on the memory
    assert gf.run(cached, other, backend="reference", params=plain.params)[0].tolist() == \
        gf.run(plain, other, backend="reference")[0].tolist()


def test_generate_cached_errors_are_typed():
    enc = nn.TransformerEncoder(num_layers=1, d_model=D, nhead=2, dim_feedforward=16, dropout=0.0)
    dec = nn.TransformerDecoder(num_layers=1, d_model=D, nhead=2, dim_feedforward=16, dropout=0.0)
    emb, head = nn.Embedding(16, D), nn.Linear(D, 16)
    embed = lambda t, o: emb(t)  # noqa: E731
    cases = [(lambda p: nn.generate_cached(dec, p, 3, embed=embed, head=head), "needs the memory"),
             (lambda p: nn.generate_cached(head, p, 3, embed=embed, head=head), "no prefill/step"),
             (lambda p: nn.generate_cached(enc, gf.cast(p, "float32"), 3, embed=embed, head=head), "integer"),
             (lambda p: nn.generate_cached(enc, p, 0, embed=embed, head=head), "max_new_tokens")]
    for fn, what in cases:
        with pytest.raises(ShapeError, match=what):
            gf.trace(fn, gf.TensorSpec((1, 3), "int64"), training=False)
