"""simplify_rules/gather_linear: ``linear(gather(T, idx), W, b)`` → ``gather(linear(T, W, b), idx)``
when the table product is computed no more often than the rows it replaces (top level: rows(T) <=
numel(idx); in a loop over loop-invariant operands: times the trip bound, then ``hoist`` moves it out)."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from passtest import check_pass


def test_embedding_then_linear_picks_rows_of_the_product():
    check_pass("""
graph g(%t: i64[2,3]) {
  param %emb: f32[4,3]
  param %w: f32[5,3]
  param %b: f32[5]
  %0: f32[2,3,3] = embedding(%emb, %t) @emb (m.py:1)
  %1: f32[2,3,5] = linear(%0, %w, %b) {activation="relu", transpose_b=true} @fc (m.py:2)
  return %1 as out
}""", "simplify", """
graph g(%t: i64[2,3]) {
  param %emb: f32[4,3]
  param %w: f32[5,3]
  param %b: f32[5]
  %0: f32[4,5] = linear(%emb, %w, %b) {activation="relu", transpose_b=true} @fc (m.py:2)
  %1: f32[2,3,5] = embedding(%0, %t) @fc (m.py:2)
  return %1 as out
}""")


def test_gather_then_matmul_too():
    check_pass("""
graph g(%t: i64[4]) {
  param %emb: f32[3,2]
  param %w: f32[2,6]
  %0: f32[4,2] = gather(%emb, %t) {axis=0}
  %1: f32[4,6] = matmul(%0, %w)
  return %1 as out
}""", "simplify", """
graph g(%t: i64[4]) {
  param %emb: f32[3,2]
  param %w: f32[2,6]
  %0: f32[3,6] = matmul(%emb, %w)
  %1: f32[4,6] = gather(%0, %t) {axis=0}
  return %1 as out
}""")


@pytest.mark.parametrize("ir", [
    # more table rows than picked rows: transforming the whole table costs more
    """graph g(%t: i64[2]) {
  param %emb: f32[8,3]
  param %w: f32[5,3]
  %0: f32[2,3] = embedding(%emb, %t)
  %1: f32[2,5] = linear(%0, %w) {activation="none", transpose_b=true}
  return %1 as out
}""",
    # the table is an input: it may change every call, nothing is saved
    """graph g(%emb: f32[3,3], %t: i64[4]) {
  param %w: f32[5,3]
  %0: f32[4,3] = gather(%emb, %t) {axis=0}
  %1: f32[4,5] = linear(%0, %w) {activation="none", transpose_b=true}
  return %1 as out
}""",
    # gathering columns: the product does not act on them row by row
    """graph g(%t: i64[4]) {
  param %emb: f32[3,3]
  param %w: f32[5,4]
  %0: f32[3,4] = gather(%emb, %t) {axis=1}
  %1: f32[3,5] = linear(%0, %w) {activation="none", transpose_b=true}
  return %1 as out
}""",
], ids=["more_rows_than_picked", "table_is_an_input", "gather_on_axis_1"])
def test_no_rewrite_when_it_does_not_pay_or_is_not_row_wise(ir):
    check_pass(ir, "simplify", ir)


class _Decoder(nn.Module):
    """An embedding feeding an LSTM step inside ``nn.generate``'s loop."""

    def __init__(self, vocab=6):
        super().__init__()
        self.emb = nn.Embedding(vocab, 3)
        self.lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True)
        self.head = nn.Linear(4, vocab)

    def forward(self, prompt, n_new):
        out, (h, c) = self.lstm(self.emb(prompt))
        split = lambda s: [gf.squeeze(p, [0]) for p in gf.split(s, 2, 0)]  # noqa: E731

        def step(tok, st):
            y, st = self.lstm.step(self.emb(tok), st)
            return self.head(y), st
        return nn.generate(step, self.head(out[:, prompt.shape[1] - 1]), (split(h), split(c)), n_new)[0]


@pytest.mark.parametrize("n_new, moved", [(6, True), (2, False)])
def test_in_a_decoding_loop_the_product_leaves_the_loop(n_new, moved):
    """6 tokens from a 6-row table: the table product runs once before the loop instead of a
    row product per step; 2 tokens: it would cost more, the loop keeps its per-step product."""
    g = gf.trace(lambda p: _Decoder()(p, n_new), gf.TensorSpec((1, "plen"), "int64"), training=False, seed=0)
    opt = gf.optimize(g, verify=True)
    top = [n for n in opt.body if n.op == "linear" and (n.inputs[0].name or "").endswith("emb.weight")]
    assert bool(top) == moved
    prompt = np.array([[1, 2, 3]], np.int64)
    want = gf.run(g, [prompt], backend="reference")[0]
    assert gf.run(opt, [prompt], backend="reference")[0].tolist() == want.tolist()
