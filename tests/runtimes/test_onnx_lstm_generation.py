"""An LSTM language model's in-graph generator, optimised and exported to ONNX: the ``Loop`` body
carries the state per layer (no Split/Concat/Reshape of it per token), reads the embedding already
multiplied by the first layer's input weights (one ``Gather``, no ``Gemm`` for it), hands the tokens
out as the ``Loop``'s scan output (no per-step bookkeeping), and onnxruntime decodes the reference
interpreter's tokens."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn

pytest.importorskip("onnxruntime")

L, V, N = 2, 12, 12


class _CharLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 4)
        self.lstm = nn.LSTM(4, 8, num_layers=L, batch_first=True)
        self.head = nn.Linear(8, V)

    def forward(self, prompt):
        out, (h, c) = self.lstm(self.emb(prompt))
        per_layer = lambda s: [gf.squeeze(t, [0]) for t in gf.split(s, L, 0)]  # noqa: E731

        def step(tok, state):
            y, state = self.lstm.step(self.emb(tok), state)
            return self.head(y), state
        return nn.generate(step, self.head(out[:, prompt.shape[1] - 1]), (per_layer(h), per_layer(c)), N)[0]


def test_the_exported_generator_loop_body_is_lean_and_decodes_the_reference_tokens():
    g = gf.trace(_CharLSTM(), gf.TensorSpec((1, "plen"), "int64"), training=False, seed=0)
    opt = gf.optimize(g, verify=True)
    proto = gf.to_onnx(opt)
    (loop,) = [n for n in proto.graph.node if n.op_type == "Loop"]
    body = collections.Counter(n.op_type for n in loop.attribute[0].g.node)
    assert body["Concat"] == 0 and body["Reshape"] == 0, body
    assert body["Gemm"] + body["MatMul"] == 2 * L, body          # W_hh per layer, W_ih above layer 0, head
    # a fixed token count: the tokens leave as the Loop's scan output — no per-step write into a
    # buffer (Equal/Where), no step counter (Add/Less) and no loop-invariant flags passed along
    assert not {"Where", "Equal", "Less"} & set(body), body
    assert body["Add"] == 2 * L, body                           # per layer: the gates' sum and c's update
    assert len(loop.attribute[0].g.output) == 1 + 1 + 2 * L + 1  # cond, logits, (h, c) per layer, the token
    prompt = np.array([[1, 2, 3, 4]], np.int64)
    want = gf.run(g, [prompt], backend="reference")[0]
    assert gf.run(opt, [prompt], backend="onnxruntime")[0].tolist() == want.tolist()
