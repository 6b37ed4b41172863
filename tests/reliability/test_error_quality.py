"""Error quality, in the voice of a user making the common mistakes: every message names the module
path, the shapes, the user's source line, and says how to fix it."""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn

HERE = os.path.basename(__file__)


def _line_of(fn, text: str) -> str:
    """``test_error_quality.py:N`` of the line in ``fn``'s source that contains ``text``."""
    lines, start = inspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if text in line:
            return f"{HERE}:{start + i}"
    raise AssertionError(f"{text!r} not in {fn.__name__}")


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 16)
        self.fc2 = nn.Linear(8, 4)  # oops: fc1 gives 16 features

    def forward(self, x):
        h = self.fc1(x).relu()
        return self.fc2(h)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()

    def forward(self, x):
        return self.encoder(x)


def test_wrong_in_features_names_module_shapes_line_and_fix():
    with pytest.raises(gf.ShapeError) as info:
        gf.trace(Model(), gf.TensorSpec(("batch", 32)))
    msg = str(info.value)
    assert "encoder.fc2" in msg
    assert "f32[batch,16]" in msg and "f32[4,8]" in msg
    assert _line_of(Encoder.forward, "self.fc2(h)") in msg
    assert "in_features=8" in msg and "16" in msg


class ImageNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.stem(x)


def test_nhwc_image_into_conv2d_suggests_the_transpose():
    with pytest.raises(gf.ShapeError) as info:
        gf.trace(ImageNet(), gf.TensorSpec(("batch", 32, 32, 3)))  # NHWC, as from PIL / TF
    msg = str(info.value)
    assert "stem" in msg and "conv2d" in msg
    assert "f32[batch,32,32,3]" in msg and "NCHW" in msg
    assert "permute(0, 3, 1, 2)" in msg
    assert _line_of(ImageNet.forward, "self.stem(x)") in msg


def _float_labels_loss(logits, labels):
    return nn.functional.cross_entropy(logits, labels)


def test_float_labels_for_cross_entropy():
    with pytest.raises(gf.DTypeError) as info:
        gf.trace(_float_labels_loss, gf.TensorSpec(("batch", 10)), gf.TensorSpec(("batch",), "float32"))
    msg = str(info.value)
    assert "cross_entropy" in msg and "f32[batch]" in msg and "f32[batch,10]" in msg
    assert "int64" in msg
    assert _line_of(_float_labels_loss, "cross_entropy(") in msg


def test_one_hot_labels_for_cross_entropy_suggest_argmax():
    with pytest.raises(gf.DTypeError) as info:
        gf.trace(_float_labels_loss, gf.TensorSpec(("batch", 10)), gf.TensorSpec(("batch", 10), "float32"))
    assert "argmax" in str(info.value)


def test_labels_with_a_trailing_axis():
    with pytest.raises(gf.ShapeError) as info:
        gf.trace(_float_labels_loss, gf.TensorSpec(("batch", 10)), gf.TensorSpec(("batch", 1), "int64"))
    msg = str(info.value)
    assert "i64[batch,1]" in msg and "(batch)" in msg and "squeeze" in msg
    assert _line_of(_float_labels_loss, "cross_entropy(") in msg


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        if h.sum() > 0:  # a Python branch on a run-time value
            return h
        return -h


class Model2(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate = Gate()

    def forward(self, x):
        return self.gate(x)


def test_python_if_on_a_symbolic_value():
    with pytest.raises(gf.TraceError) as info:
        gf.trace(Model2(), gf.TensorSpec(("batch", 4)))
    msg = str(info.value)
    assert "gate" in msg and "bool[]" in msg
    assert _line_of(Gate.forward, "if h.sum() > 0") in msg
    assert "gf.where" in msg


def _branch_on_batch(x):
    if x.shape[0] > 8:
        return x
    return -x


def test_python_if_on_a_symbolic_dim():
    with pytest.raises(gf.TraceError) as info:
        gf.trace(_branch_on_batch, gf.TensorSpec(("batch", 4)))
    msg = str(info.value)
    assert "'batch'" in msg and _line_of(_branch_on_batch, "if x.shape[0]") in msg
    assert "static" in msg


class Regularised(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.fc(x))


def test_forgetting_eval_before_export_warns_with_the_site_and_the_fix():
    model = Regularised()  # modules start in training mode, as in PyTorch
    g = gf.trace(model, gf.TensorSpec(("batch", 4)))
    with pytest.warns(gf.api.TrainingModeExportWarning) as record:
        gf.to_onnx(g)
    msg = str(record[0].message)
    assert "dropout at drop" in msg and _line_of(Regularised.forward, "self.drop(") in msg
    assert "model.eval()" in msg
    model.eval()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", gf.api.TrainingModeExportWarning)
        gf.to_onnx(gf.trace(model, gf.TensorSpec(("batch", 4))))  # eval mode: no warning


def test_wrong_input_shape_at_run_time_names_input_axis_and_expectation():
    g = gf.trace(nn.Linear(4, 2), gf.TensorSpec(("batch", 4)))
    with pytest.raises(gf.InputError) as info:
        gf.run(g, {"x": np.zeros((3, 5), np.float32)})
    msg = str(info.value)
    assert "'x'" in msg and "(3, 5)" in msg and "f32[batch,4]" in msg and "axis 1" in msg
