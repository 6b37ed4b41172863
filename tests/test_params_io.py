"""save_params / load_params: safetensors round trip (bfloat16 bit-exact), atomic writes, and
LoadErrors for files that do not fit; gf.summary's table."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.params_io import load_arrays, save_arrays


def test_round_trip_installs_the_values(mlp_graph, mlp_seq, tmp_path):
    path = str(tmp_path / "mlp.safetensors")
    gf.save_params(mlp_graph, path)
    other = gf.trace(mlp_seq, gf.TensorSpec(("batch", 6)))
    renamed = gf.parse(str(mlp_graph))  # same model, no values
    loaded = gf.load_params(path, renamed)
    assert sorted(loaded) == sorted(mlp_graph.params)
    for name, value in mlp_graph.params.items():
        assert renamed.params[name].tobytes() == value.tobytes() and renamed.params[name].dtype == value.dtype
    x = np.ones((2, 6), np.float32)
    np.testing.assert_array_equal(gf.run(renamed, [x])[0], gf.run(mlp_graph, [x])[0])
    with pytest.raises(gf.LoadError, match="does not match graph") as err:
        gf.load_params(path, other)  # the seq model names its layers 0 and 2
    assert "missing" in str(err.value) and "unexpected" in str(err.value) and err.value.hint


def test_bfloat16_and_other_dtypes_are_bit_exact(tmp_path):
    bf16 = gf.dtypes.to_numpy_dtype("bfloat16")
    arrays = {"bf": np.array([1.5, -0.0, 3.14159, np.inf], dtype=bf16), "h": np.array([1e-4], np.float16),
              "i": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.array([True, False]),
              "u": np.array([7], np.uint32), "s": np.array(2.5, np.float64), "t": np.arange(6.0, dtype=np.float32).reshape(2, 3).T}
    path = str(tmp_path / "a.safetensors")
    save_arrays(arrays, path, {"note": "x"})
    back, meta = load_arrays(path)
    assert meta.get("note") == "x" and "graphforge.bf16" not in meta
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape, name
        assert back[name].tobytes() == np.ascontiguousarray(value).tobytes(), name


def test_bfloat16_model_round_trip(tmp_path):
    g = gf.trace(nn.Linear(3, 2, dtype="bfloat16"), gf.TensorSpec((1, 3), "bfloat16"))
    path = str(tmp_path / "bf.safetensors")
    gf.save_params(g, path)
    fresh = gf.trace(nn.Linear(3, 2, dtype="bfloat16"), gf.TensorSpec((1, 3), "bfloat16"), seed=99)
    gf.load_params(path, fresh)
    for name in g.params:
        assert fresh.params[name].tobytes() == g.params[name].tobytes()
        assert fresh.params[name].dtype == gf.dtypes.to_numpy_dtype("bfloat16")


def test_writes_are_atomic_and_leave_no_temp_files(mlp_graph, tmp_path):
    path = tmp_path / "w.safetensors"
    gf.save_params(mlp_graph, str(path))
    gf.save_params(mlp_graph, str(path))  # overwrite in place
    assert os.listdir(tmp_path) == ["w.safetensors"]
    # A failed write keeps the old file and leaves nothing behind.
    with pytest.raises(gf.LoadError):
        gf.save_params({"bad": np.array(["not", "numeric"])}, str(path))
    assert os.listdir(tmp_path) == ["w.safetensors"]
    assert sorted(gf.load_params(str(path))) == sorted(mlp_graph.params)
    # A directory in place of the file: the rename fails, the temp file is removed.
    (tmp_path / "adir").mkdir()
    with pytest.raises(gf.LoadError, match="cannot write"):
        gf.save_params(mlp_graph, str(tmp_path / "adir"))
    assert sorted(os.listdir(tmp_path)) == ["adir", "w.safetensors"] and os.listdir(tmp_path / "adir") == []


def test_bad_paths_and_files_are_load_errors(mlp_graph, tmp_path):
    with pytest.raises(gf.LoadError, match="cannot write"):
        gf.save_params(mlp_graph, str(tmp_path / "no" / "such" / "dir" / "w.safetensors"))
    with pytest.raises(gf.LoadError, match="no such weights file"):
        gf.load_params(str(tmp_path / "missing.safetensors"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(gf.LoadError, match="not a valid safetensors"):
        gf.load_params(str(junk))
    good = tmp_path / "good.safetensors"
    gf.save_params(mlp_graph, str(good))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(gf.LoadError):
        gf.load_params(str(truncated))


def test_loading_another_models_file_is_a_load_error(mlp_graph, make_mlp, tmp_path):
    path = str(tmp_path / "w.safetensors")
    gf.save_params(mlp_graph, path)
    wider = gf.trace(make_mlp(6, 9, 3), gf.TensorSpec(("batch", 6)))  # same names, other shapes
    before = {k: v.copy() for k, v in wider.params.items()}
    with pytest.raises(gf.LoadError, match="parameter 'layer1"):
        gf.load_params(path, wider)
    assert all(np.array_equal(before[k], wider.params[k]) for k in before)  # nothing installed
    f64 = gf.trace(make_mlp(6, 8, 3, dtype="float64"), gf.TensorSpec(("batch", 6), "float64"))
    with pytest.raises(gf.LoadError, match="float32"):
        gf.load_params(path, f64)


# ---- gf.summary -----------------------------------------------------------------------------

def test_summary_lists_scopes_params_and_flops(mlp_graph):
    lines = []
    text = gf.summary(mlp_graph, print_fn=lines.append)
    assert lines == [text]
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith(("layer1", "layer2"))}
    # 6*8 + 8 params; 2*k*n multiply-adds + n bias adds per example
    assert rows["layer1"][-2:] == ["56", f"{2 * 6 * 8 + 8:,}"]
    assert rows["layer2"][-2:] == ["27", f"{2 * 8 * 3 + 3:,}"]
    root = [line for line in text.splitlines() if line.startswith("(root)")]
    assert root and root[0].split()[1] == "relu" and root[0].split()[-1] == "8"
    assert "Trainable params: 83" in text and "FLOPs per example: 163" in text
    assert "Scope" in text and "FLOPs" in text and "f32[batch,3]" in text


def test_summary_counts_buffers_as_non_trainable():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)
            self.stat = nn.Buffer((2,))

        def forward(self, x):
            return self.fc(x) + self.stat

    text = gf.summary(gf.trace(M(), gf.TensorSpec(("n", 4))), print_fn=None)
    assert "Trainable params: 10" in text and "Non-trainable: 2" in text and "(root)" in text
