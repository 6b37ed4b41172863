"""Module.state_dict / load_state_dict as a PyTorch user drives them: round trips, strict reports,
files, mismatches that leave the module untouched, and later traces seeing the loaded weights."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn

SPEC = gf.TensorSpec(("batch", 6), "float32")


def test_state_dict_has_pytorch_names_and_the_traced_values(mlp_module):
    sd = mlp_module.state_dict()
    assert list(sd) == ["layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias"]
    assert sd["layer1.weight"].shape == (8, 6) and sd["layer1.weight"].dtype == np.float32
    g = gf.trace(mlp_module, SPEC, seed=0)
    for name, value in sd.items():
        np.testing.assert_array_equal(value, g.params[name])
    seq_names = list(nn.seq().add(nn.Linear(6, 8)).add_fn(gf.relu).add(nn.Linear(8, 3)).state_dict())
    assert seq_names == ["0.weight", "0.bias", "2.weight", "2.bias"]  # nn.Sequential's numbering


def test_loaded_weights_are_what_later_traces_use(mlp_module, rng):
    new = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in mlp_module.state_dict().items()}
    result = mlp_module.load_state_dict(new)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for seed in (0, 7):  # a loaded value wins over the seed's draw
        g = gf.trace(mlp_module, SPEC, seed=seed)
        for name, value in new.items():
            np.testing.assert_array_equal(g.params[name], value)
    new["layer1.weight"][:] = 0  # the module holds its own copy
    assert np.abs(mlp_module.state_dict()["layer1.weight"]).sum() > 0


def test_strict_reports_every_missing_and_unexpected_name(mlp_module):
    sd = mlp_module.state_dict()
    del sd["layer1.bias"], sd["layer2.weight"]
    sd["layer3.weight"] = np.zeros((2, 2), np.float32)
    with pytest.raises(gf.StateDictError) as err:
        mlp_module.load_state_dict(sd)
    assert err.value.missing == ["layer1.bias", "layer2.weight"]
    assert err.value.unexpected == ["layer3.weight"]
    assert "strict=False" in str(err.value)
    res = mlp_module.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["layer1.bias", "layer2.weight"] and res.unexpected_keys == ["layer3.weight"]


def test_a_shape_mismatch_raises_and_leaves_the_module_untouched(mlp_module):
    before = mlp_module.state_dict()
    sd = {k: v + 1 for k, v in before.items()}
    sd["layer2.weight"] = np.zeros((4, 8), np.float32)
    for strict in (True, False):
        with pytest.raises(gf.StateDictError, match=r"layer2.weight: shape \[4, 8\] in the state dict, \[3, 8\]") as err:
            mlp_module.load_state_dict(sd, strict=strict)
        assert list(err.value.mismatched) == ["layer2.weight"]
    for k, v in mlp_module.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # layer1 was not half-loaded


def test_dtypes_are_cast_within_their_kind_only(mlp_module):
    sd = {k: v.astype(np.float64) for k, v in mlp_module.state_dict().items()}
    mlp_module.load_state_dict(sd)  # a float64 .npz for a float32 model
    assert mlp_module.state_dict()["layer1.weight"].dtype == np.float32
    sd["layer1.bias"] = np.zeros(8, np.int64)
    with pytest.raises(gf.StateDictError, match="dtype int64"):
        mlp_module.load_state_dict(sd)


def test_load_from_safetensors_and_npz_files(tmp_path, mlp_module, rng):
    sd = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in mlp_module.state_dict().items()}
    gf.save_params(sd, str(tmp_path / "w.safetensors"))
    np.savez(tmp_path / "w.npz", **sd)
    for path in ("w.safetensors", "w.npz"):
        m = type(mlp_module)()
        m.load_state_dict(str(tmp_path / path))
        np.testing.assert_array_equal(m.state_dict()["layer2.bias"], sd["layer2.bias"])
    with pytest.raises(gf.LoadError, match="no such weights file"):
        mlp_module.load_state_dict(str(tmp_path / "nope.safetensors"))
    with pytest.raises(gf.StateDictError, match="takes a dict"):
        mlp_module.load_state_dict(42)


def test_tensors_are_duck_typed_like_torch(mlp_module):
    class FakeTorchTensor:  # the protocol torch tensors follow; graphforge never imports torch
        def __init__(self, a):
            self.a = a

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.a

    sd = {k: FakeTorchTensor(v * 2) for k, v in mlp_module.state_dict().items()}
    want = {k: v.a for k, v in sd.items()}
    mlp_module.load_state_dict(sd)
    np.testing.assert_array_equal(mlp_module.state_dict()["layer1.weight"], want["layer1.weight"])


def test_gf_load_params_into_a_module(tmp_path, mlp_module):
    sd = {k: v + 0.5 for k, v in mlp_module.state_dict().items()}
    gf.save_params(sd, str(tmp_path / "w.safetensors"))
    gf.load_params(str(tmp_path / "w.safetensors"), mlp_module)
    np.testing.assert_array_equal(mlp_module.state_dict()["layer1.bias"], sd["layer1.bias"])
    with pytest.raises(gf.LoadError, match="gf.Graph, an nn.Module or a gf.Trainer"):
        gf.load_params(str(tmp_path / "w.safetensors"), object())


def test_trace_accepts_a_graph(mlp_graph):
    g = gf.trace(mlp_graph)
    assert g is not mlp_graph and str(g) == str(mlp_graph)
    assert gf.trace(mlp_graph, gf.TensorSpec(("n", 6))).inputs[0].type == mlp_graph.inputs[0].type
    with pytest.raises(gf.TraceError, match="input 'x' is f32\\[batch,6\\], the spec says f32\\[batch,5\\]"):
        gf.trace(mlp_graph, gf.TensorSpec(("batch", 5)))
