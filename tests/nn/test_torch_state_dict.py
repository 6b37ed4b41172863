"""PyTorch's pretrained weights in graphforge: a state dict written by PyTorch (safetensors file, or
NumPy arrays of its tensors) loads into the mirrored graphforge model and reproduces PyTorch's output.

The fixtures were produced once by tests/fixtures/make_torch_fixtures.py (with torch); this test
never imports torch."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


class Net(nn.Module):
    """The graphforge mirror of make_torch_fixtures.TorchNet (same attribute names and layers)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 8)
        self.ln = nn.LayerNorm(8)
        self.emb = nn.Embedding(10, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, img, tokens):
        h = gf.relu(self.bn(self.conv(img)))
        h = self.ln(self.fc(gf.flatten(h, 1)))
        q = self.emb(tokens) + h.reshape([-1, 1, 8])
        return self.head(gf.mean(self.attn(q, q, q), axis=1))


@pytest.fixture(scope="module")
def io():
    with np.load(os.path.join(FIXTURES, "torch_net_io.npz")) as z:
        return {k: z[k] for k in z.files}


def _run(model, io):
    g = gf.trace(model, gf.TensorSpec(("batch", 3, 4, 4)), gf.TensorSpec(("batch", 6), "int64"), training=False)
    return gf.run(g, {"img": io["img"], "tokens": io["tokens"]}, backend="reference")[0]


def test_a_pytorch_safetensors_file_reproduces_pytorchs_output(io):
    model = Net()
    result = model.load_state_dict(os.path.join(FIXTURES, "torch_net.safetensors"))
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_allclose(_run(model, io), io["expected"], rtol=1e-4, atol=1e-5)
    sd = model.state_dict()  # the packed in-projection went to q/k/v, BatchNorm's stats came along
    np.testing.assert_array_equal(sd["attn.k_proj.weight"], io["sd/attn.in_proj_weight"][8:16])
    np.testing.assert_array_equal(sd["attn.v_proj.bias"], io["sd/attn.in_proj_bias"][16:])
    np.testing.assert_array_equal(sd["bn.running_var"], io["sd/bn.running_var"])
    assert "bn.num_batches_tracked" not in sd


def test_a_dict_of_pytorch_arrays_loads_the_same(io):
    model = Net()
    model.load_state_dict({k[3:]: v for k, v in io.items() if k.startswith("sd/")})
    np.testing.assert_allclose(_run(model, io), io["expected"], rtol=1e-4, atol=1e-5)


def test_a_pytorch_state_dict_of_another_shape_is_reported(io):
    sd = {k[3:]: v for k, v in io.items() if k.startswith("sd/")}
    sd["attn.in_proj_weight"] = sd["attn.in_proj_weight"][:, :4]
    del sd["head.bias"]
    with pytest.raises(gf.StateDictError) as err:
        Net().load_state_dict(sd)
    assert err.value.missing == ["head.bias"]
    assert set(err.value.mismatched) == {"attn.q_proj.weight", "attn.k_proj.weight", "attn.v_proj.weight"}
