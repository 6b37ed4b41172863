"""Issue #14: "a static-shape model must export exactly as today". Run-time shape arithmetic (Shape,
Gather, Concat, ConstantOfShape, …) is emitted only for symbolic dims, so these static models keep
the node counts they had before symbolic shapes landed (measured at 951b7fa and unchanged since;
pooling in ceil mode with avg's border divisor included)."""
from __future__ import annotations

import collections

import pytest

import graphforge as gf
from graphforge import nn


def _cnn(x):
    y = gf.relu(gf.conv2d(x, gf.ones((4, 3, 3, 3)), padding=1))
    y = gf.max_pool2d(y, 3, stride=2, ceil_mode=True)
    y = gf.avg_pool2d(y, 3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)
    return y.reshape(2, -1)


# name -> (model from the shared README-MLP factory, input spec, exported op counts)
MODELS = {
    "mlp": (lambda make_mlp: make_mlp(784, 128, 10), gf.TensorSpec((4, 784), "float32"), {"Gemm": 2, "Relu": 1}),
    "cnn": (lambda make_mlp: _cnn, gf.TensorSpec((2, 3, 11, 9), "float32"),
            {"AveragePool": 1, "Conv": 1, "MaxPool": 1, "Mul": 1, "Pad": 1, "Relu": 1, "Reshape": 1}),
    "encoder": (lambda make_mlp: nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0), gf.TensorSpec((2, 5, 16), "float32"),
                # + 1 Reshape per post-norm since 2026-12-04: a residual sum reaches its LayerNormalization
                # through a same-shape Reshape, away from onnxruntime's slower SkipLayerNormalization fusion
                {"Add": 8, "LayerNormalization": 2, "MatMul": 8, "Mul": 1, "Relu": 1, "Reshape": 6, "Softmax": 1,
                 "Transpose": 4}),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_static_models_export_the_same_nodes(name, make_mlp):
    make, spec, want = MODELS[name]
    proto = gf.to_onnx(gf.optimize(gf.trace(make(make_mlp), spec)), opset=17)
    assert dict(collections.Counter(n.op_type for n in proto.graph.node)) == want
