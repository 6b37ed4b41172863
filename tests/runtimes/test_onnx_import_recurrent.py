"""ONNX import of recurrent nets: ``torch.onnx.export`` of a 2-layer bidirectional batch-first
``nn.LSTM`` / ``nn.GRU`` — the TorchScript exporter (native ``LSTM``/``GRU`` nodes) and the dynamo
exporter — imports onto ``gf.scan`` and reproduces PyTorch at two sequence lengths (one file,
dynamic batch and sequence) on JAX and onnxruntime. ONNX's own LSTM/GRU/RNN node cases run in the
conformance suite. Fixtures: tests/fixtures/make_sequence_fixtures.py (no torch here)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphforge as gf

pytest.importorskip("onnx")

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


@pytest.fixture(scope="module")
def fx():
    with np.load(os.path.join(FIXTURES, "seq_torch_onnx.npz")) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_torch_onnx_export_imports_and_matches_pytorch(fx, kind, exporter):
    g = gf.from_onnx(os.path.join(FIXTURES, f"seq_torch_{kind}_{exporter}.onnx"))
    if exporter == "torchscript":
        assert "scan" in g.op_counts()
    names = ["out", "h_n"] + (["c_n"] if kind == "lstm" else [])
    for backend in ("jax", "onnxruntime"):
        for t in (5, 9):
            got = gf.run(g, [fx[f"{kind}/{t}/x"]], backend=backend)
            for name, a in zip(names, got):
                np.testing.assert_allclose(a, fx[f"{kind}/{t}/{name}"], rtol=1e-4, atol=1e-5,
                                           err_msg=f"{backend} T={t} {name}")


def test_an_unknown_activation_is_named():
    from onnx import TensorProto, helper

    node = helper.make_node("RNN", ["x", "w", "r"], ["y"], hidden_size=2, activations=["Gelu"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 1, 1, 2])],
                              [helper.make_tensor("w", TensorProto.FLOAT, [1, 2, 2], np.ones(4)),
                               helper.make_tensor("r", TensorProto.FLOAT, [1, 2, 2], np.ones(4))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(gf.UnsupportedOpError, match="Gelu"):
        gf.from_onnx(model)
