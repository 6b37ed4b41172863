"""gf.save_onnx given a folder instead of a file name says so, and writes nothing there."""
import os

import pytest

pytest.importorskip("onnx")

import graphforge as gf  # noqa: E402
from graphforge import nn  # noqa: E402


def test_save_onnx_to_a_directory_names_the_directory(tmp_path):
    g = gf.trace(nn.Linear(4, 2), gf.TensorSpec(("batch", 4)))
    with pytest.raises(gf.ExportError, match="is a directory") as info:
        gf.save_onnx(g, str(tmp_path))
    assert ".gf-onnx-" not in str(info.value) and "model.onnx" in str(info.value)
    assert os.listdir(tmp_path) == []
