"""nn.generate: greedy and sampled decoding inside the graph (one gf.scan, or a gf.while_loop with an
end token), the same tokens on
JAX, onnxruntime and the reference interpreter; the sampling rule (temperature, top-k) on its own."""
from __future__ import annotations


import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.nn.generation import _choose

BACKENDS = ["reference", "jax", "onnxruntime"]


def _choice_graph(temperature, top_k):
    return gf.trace(lambda lg, key: _choose(lg, temperature, top_k, key),
                    gf.TensorSpec(("batch", 6), "float32"), gf.TensorSpec((), "uint32"))


def test_sampled_tokens_are_equal_on_every_backend():
    g = _choice_graph(0.7, 3)
    logits = np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32)
    got = [gf.run(g, [logits, np.uint32(11)], backend=b)[0] for b in BACKENDS]
    assert all(np.array_equal(got[0], x) for x in got[1:])
    assert got[0].dtype == np.int64 and got[0].shape == (50,)


def test_sampling_follows_softmax_of_logits_over_temperature():
    g = _choice_graph(2.0, None)
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4, 1e-9, 1e-9], np.float32)) * 2.0   # /T=2 -> those probs
    rows = np.tile(logits, (20000, 1))
    tokens = gf.run(g, [rows, np.uint32(5)], backend="jax")[0]
    freq = np.bincount(tokens, minlength=6) / len(tokens)
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4, 0, 0], atol=0.015)


def test_top_k_draws_only_the_k_largest():
    g = _choice_graph(1.0, 2)
    logits = np.tile(np.array([0.0, 3.0, 1.0, 2.9, -1.0, 0.5], np.float32), (4000, 1))
    tokens = gf.run(g, [logits, np.uint32(9)], backend="onnxruntime")[0]
    assert set(np.unique(tokens)) == {1, 3}


def test_temperature_zero_is_argmax():
    g = _choice_graph(0.0, None)
    logits = np.random.default_rng(1).standard_normal((7, 6)).astype(np.float32)
    np.testing.assert_array_equal(gf.run(g, [logits, np.uint32(0)])[0], logits.argmax(-1))


def test_random_uniform_is_uniform_in_the_open_interval():
    g = gf.trace(lambda like, key: gf.random_uniform(key, like), gf.TensorSpec(("n",), "float32"),
                 gf.TensorSpec((), "uint32"))
    u = gf.run(g, [np.zeros(100000, np.float32), np.uint32(3)], backend="onnxruntime")[0]
    assert 0 < u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    hist = np.histogram(u, bins=10, range=(0, 1))[0]
    assert hist.min() > 9500


class TinyLM(nn.Module):
    """An LSTM language model over a vocabulary of 11 tokens (10 = end)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.head = nn.Linear(16, 11)

    def forward(self, prompt, n=12, score=False, **kw):
        out, state = self.lstm(self.emb(prompt))
        if score:  # the logits of every position (for decoding one call per token)
            return self.head(out)

        def step(tok, st):
            y, st = self.lstm.step(self.emb(tok), st)
            return self.head(y), st
        return nn.generate(step, self.head(out[:, prompt.shape[1] - 1]), state, n, **kw)


def _python_greedy(g_step_free, prompt, n):
    """Greedy decoding one token per call of a graph that scores a whole sequence (the slow way)."""
    seq = prompt.copy()
    for _ in range(n):
        nxt = g_step_free(seq).argmax(-1)[:, -1]
        seq = np.concatenate([seq, nxt[:, None]], 1)
    return seq[:, prompt.shape[1]:]


def test_greedy_generation_matches_a_python_loop_on_every_backend():
    model = TinyLM()
    g = gf.trace(lambda p: model(p), gf.TensorSpec(("batch", "plen"), "int64"), seed=3)
    assert "scan" in g.op_counts() and "while_loop" not in g.op_counts()  # a fixed count: no stop test
    scorer = gf.trace(lambda p: model(p, score=True), gf.TensorSpec(("batch", "plen"), "int64"), seed=3)
    prompt = np.array([[1, 2, 3], [4, 5, 6]], np.int64)
    # the NumPy reference scores: jax would compile once per prefix length (12 compiles)
    want = _python_greedy(lambda s: gf.run(scorer, [s], backend="reference")[0], prompt, 12)
    for backend in BACKENDS:
        tokens, count = gf.run(g, [prompt], backend=backend)
        np.testing.assert_array_equal(tokens, want, err_msg=backend)
        assert int(count) == 12


def test_generation_stops_when_every_sequence_ended():
    model = TinyLM()
    spec = gf.TensorSpec(("batch", "plen"), "int64")
    prompt = np.array([[1, 2, 3]], np.int64)
    free = gf.run(gf.trace(lambda p: model(p, n=12), spec, seed=3), [prompt])[0][0]
    end = int(free[2])                       # make the third greedy token the end token
    first_end = int(np.flatnonzero(free == end)[0])
    g = gf.trace(lambda p: model(p, n=12, eos_id=end), spec, seed=3)
    assert "while_loop" in g.op_counts()
    for backend in ("jax", "onnxruntime"):
        tokens, count = gf.run(g, [prompt], backend=backend)
        assert int(count) == first_end + 1 < 12, backend          # the loop ended early
        np.testing.assert_array_equal(tokens[0, :first_end + 1], free[:first_end + 1])
        assert (tokens[0, first_end:] == end).all()


def test_sampled_generation_is_equal_on_jax_and_onnxruntime():
    model = TinyLM()
    g = gf.trace(lambda p: model(p, temperature=0.8, top_k=4), gf.TensorSpec(("batch", "plen"), "int64"), seed=3)
    prompt = np.array([[1, 2, 3], [7, 7, 7]], np.int64)
    a = gf.run(g, {"p": prompt, "rng": np.uint32(42)}, backend="jax")[0]
    b = gf.run(g, {"p": prompt, "rng": np.uint32(42)}, backend="onnxruntime")[0]
    c = gf.run(g, {"p": prompt, "rng": np.uint32(43)}, backend="jax")[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kw, match", [
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(temperature=-1.0), "temperature"),
    (dict(top_k=0), "top_k"),
])
def test_bad_arguments_are_shape_errors(kw, match):
    args = dict(max_new_tokens=4) | kw
    with pytest.raises(gf.ShapeError, match=match):
        gf.trace(lambda lg: nn.generate(lambda t, s: (lg, s), lg, lg, args.pop("max_new_tokens"), **args)[0],
                 gf.TensorSpec((1, 5)))
