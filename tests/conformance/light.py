"""The 'light' model zoo copies shipped inside the onnx wheel (onnx/backend/test/data/light): AlexNet,
DenseNet-121, Inception v1/v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512 with their expected
outputs. Inputs follow onnx's runner (``arange(n).reshape(shape) / n`` in float32, free dims = 1)."""
from __future__ import annotations

import glob
import os

import numpy as np
import onnx
from onnx import numpy_helper

import onnx.backend.test as _bt

__all__ = ["LIGHT_DIR", "light_models", "light_case"]

LIGHT_DIR = os.path.join(os.path.dirname(_bt.__file__), "data", "light")


def light_models() -> list[str]:
    return sorted(os.path.basename(p)[len("light_"):-len(".onnx")]
                  for p in glob.glob(os.path.join(LIGHT_DIR, "light_*.onnx")))


def light_case(name: str):
    """(model, feeds, expected outputs) for one light model."""
    path = os.path.join(LIGHT_DIR, f"light_{name}.onnx")
    model = onnx.load(path)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        feeds[vi.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
    expected = []
    for i in range(len(model.graph.output)):
        t = onnx.TensorProto()
        with open(os.path.join(LIGHT_DIR, f"light_{name}_output_{i}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        expected.append(numpy_helper.to_array(t))
    return model, feeds, expected
