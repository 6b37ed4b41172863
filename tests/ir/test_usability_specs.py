"""TensorSpec mistakes a Keras/PyTorch/ONNX user makes: a bare int shape, None or -1 for a dynamic dim."""
import pytest

import graphforge as gf


def test_a_bare_int_shape_is_a_shape_error():
    with pytest.raises(gf.ShapeError, match=r"\(4,\)"):
        gf.TensorSpec(4)


@pytest.mark.parametrize("dim", [None, -1])
def test_keras_none_and_onnx_minus_one_suggest_a_symbolic_dim(dim):
    with pytest.raises(gf.ShapeError) as info:
        gf.TensorSpec((dim, 4))
    assert "'batch'" in str(info.value)
