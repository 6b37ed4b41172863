"""Hand-built ONNX models (onnx.helper) used by the import tests and the fine-tuning example."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["small_cnn", "mlp_classifier"]


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def small_cnn(seed: int = 0, batch: str | int = "N", opset: int = 17) -> onnx.ModelProto:
    """Conv → BatchNorm → Relu → MaxPool → Conv → Relu → GlobalAveragePool → Flatten → Gemm → Softmax."""
    rng = np.random.default_rng(seed)
    f = np.float32
    inits = [
        _init("conv1.w", rng.normal(0, 0.3, (8, 3, 3, 3)).astype(f)), _init("conv1.b", rng.normal(0, 0.1, 8).astype(f)),
        _init("bn.scale", rng.uniform(0.5, 1.5, 8).astype(f)), _init("bn.bias", rng.normal(0, 0.1, 8).astype(f)),
        _init("bn.mean", rng.normal(0, 0.1, 8).astype(f)), _init("bn.var", rng.uniform(0.5, 1.5, 8).astype(f)),
        _init("conv2.w", rng.normal(0, 0.2, (16, 8, 3, 3)).astype(f)),
        _init("fc.w", rng.normal(0, 0.2, (10, 16)).astype(f)), _init("fc.b", rng.normal(0, 0.1, 10).astype(f)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["b1"],
                         name="bn1", epsilon=1e-5),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.w"], ["c2"], name="conv2", auto_pad="SAME_UPPER"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(nodes, "small_cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def mlp_classifier(n_in: int = 64, hidden: int = 32, n_out: int = 10, seed: int = 0) -> onnx.ModelProto:
    """x (N, 64) → Gemm → Relu → Gemm (logits): a digits classifier with random weights."""
    rng = np.random.default_rng(seed)
    f = np.float32
    inits = [_init("fc1.weight", (rng.normal(0, 1, (hidden, n_in)) / np.sqrt(n_in)).astype(f)),
             _init("fc1.bias", np.zeros(hidden, f)),
             _init("fc2.weight", (rng.normal(0, 1, (n_out, hidden)) / np.sqrt(hidden)).astype(f)),
             _init("fc2.bias", np.zeros(n_out, f))]
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["hr"], name="act"),
             helper.make_node("Gemm", ["hr", "fc2.weight", "fc2.bias"], ["logits"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "digits_mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
