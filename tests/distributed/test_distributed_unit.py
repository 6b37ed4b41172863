"""In-process pieces of graphforge.train.distributed and the multi-process CLI flags (one device):
mesh specs and their errors, glob rules, HLO collective accounting, lazy rows, flag validation."""
from __future__ import annotations

import argparse
import types

import numpy as np
import pytest

pytest.importorskip("optax")

import graphforge as gf  # noqa: E402
from graphforge.train import distributed as dist  # noqa: E402

MESH_4x2 = types.SimpleNamespace(shape={"data": 4, "model": 2})
SHAPES = {"enc.layers.0.ffn.fc1.weight": (32, 16), "enc.layers.0.ffn.fc1.bias": (32,),
          "enc.layers.0.ffn.fc2.weight": (16, 32), "enc.layers.1.ffn.fc1.weight": (32, 16),
          "head.weight": (3, 16)}


def test_default_rules_match_every_layer_and_skip_what_does_not_divide():
    specs = dist._match_rules(dist.DEFAULT_PARAM_RULES, SHAPES, MESH_4x2, strict=False)
    assert specs == {"enc.layers.0.ffn.fc1.weight": ("model", None), "enc.layers.0.ffn.fc1.bias": ("model",),
                     "enc.layers.0.ffn.fc2.weight": (None, "model"), "enc.layers.1.ffn.fc1.weight": ("model", None)}
    odd = dist._match_rules(dist.DEFAULT_PARAM_RULES, {"ffn.fc1.weight": (7, 16)}, MESH_4x2, strict=False)
    assert odd == {}  # 7 rows cannot split over 2: stays replicated


def test_user_rules_first_match_wins_and_errors_are_actionable():
    rules = {"*.fc1.weight": (None, "model"), "*.weight": ("model", None)}
    specs = dist._match_rules(rules, {"a.fc1.weight": (4, 8), "b.weight": (4, 8)}, MESH_4x2, strict=True)
    assert specs == {"a.fc1.weight": (None, "model"), "b.weight": ("model", None)}
    with pytest.raises(gf.InputError, match="does not divide"):
        dist._match_rules({"head.weight": ("model", None)}, SHAPES, MESH_4x2, strict=True)
    with pytest.raises(gf.InputError, match="unknown mesh axis 'tensor'"):
        dist._match_rules({"head.weight": ("tensor",)}, SHAPES, MESH_4x2, strict=True)
    with pytest.raises(gf.InputError, match="match no parameter"):
        dist._match_rules({"*.fc9.weight": ("model",)}, SHAPES, MESH_4x2, strict=True)
    with pytest.raises(gf.InputError, match="3 entries for a rank-2"):
        dist._match_rules({"head.weight": ("model", None, None)}, SHAPES, MESH_4x2, strict=True)


def _one_device():
    import jax
    if jax.device_count() != 1:
        pytest.skip("needs a one-device process (the multi-device cases run in tests/distributed subprocesses)")


def test_mesh_specs_and_their_errors_on_one_device():
    _one_device()
    assert dist.resolve(None, None, {}) is None
    assert dist.resolve({"data": 1}, None, {}) is None
    assert dict(dist.make_mesh({"data": -1}).shape) == {"data": 1}
    with pytest.raises(gf.InputError, match="needs 8 devices, only 1"):
        dist.make_mesh({"data": 4, "model": 2})
    with pytest.raises(gf.InputError, match="positive integers"):
        dist.make_mesh({"data": 0})
    with pytest.raises(gf.InputError, match="needs a 'data' axis"):
        dist.resolve({"model": 1}, None, {})
    with pytest.raises(gf.InputError, match="mesh must be None"):
        dist.resolve("data=4", None, {})


def test_trainer_on_one_device_keeps_the_plain_step(mlp_module):
    import optax
    _one_device()
    t = gf.Trainer(mlp_module, gf.nn.functional.cross_entropy, optax.sgd(0.1),
                   inputs=[gf.TensorSpec(("batch", 6))], targets=gf.TensorSpec(("batch",), "int64"), progress=False)
    assert t.distributed is None


HLO = """
ENTRY %main {
  %p = f32[128,784]{1,0} parameter(0)
  %all-reduce = f32[128,784]{1,0} all-reduce(%p), channel_id=1, replica_groups={{0,1}}, to_apply=%add
  %ar2 = (f32[10]{0}, bf16[4,4]{1,0}) all-reduce(%a, %b), channel_id=2, to_apply=%add
  %ag = f32[8,16]{1,0} all-gather(%c), dimensions={0}
  %ags = (f32[4,16]{1,0}, f32[8,16]{1,0}) all-gather-start(%d), dimensions={0}
  %agd = f32[8,16]{1,0} all-gather-done(%ags)
  %fusion = f32[2]{0} fusion(%all-reduce), kind=kLoop
}
"""


def test_collective_bytes_counts_each_collective_once():
    got = dist.collective_bytes(HLO)
    assert got["all-reduce"] == 128 * 784 * 4 + 10 * 4 + 16 * 2
    assert got["all-gather"] == 8 * 16 * 4 * 2  # the plain one + the async pair's result
    assert got["total"] == got["all-reduce"] + got["all-gather"]
    assert dist.collective_bytes("%x = f32[4] add(%a, %b)") == {"total": 0}


def test_row_view_reads_only_the_rows_asked_for():
    data = np.arange(40, dtype=np.float32).reshape(10, 4)
    view = dist.RowView(data, [7, 2, 5, 0])
    assert view.shape == (4, 4) and len(view) == 4 and view.dtype == np.float32
    np.testing.assert_array_equal(view[1:3], data[[2, 5]])
    np.testing.assert_array_equal(view[2:4, 1:3], data[[5, 0], 1:3])
    np.testing.assert_array_equal(np.asarray(view), data[[7, 2, 5, 0]])


def _train_args(argv):
    from graphforge.cli import train
    parser = argparse.ArgumentParser()
    train.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", "f.py", *argv])


def test_cli_mesh_flag_and_process_flags_are_validated(capsys):
    from graphforge.cli import train
    assert train.parse_mesh("data=4,model=2") == {"data": 4, "model": 2}
    assert train.parse_mesh("data=-1") == {"data": -1}
    for bad in ("data", "data=x", "data=4,data=2", "=3"):
        with pytest.raises(gf.InputError, match="AXIS=SIZE"):
            train.parse_mesh(bad)
    assert train.run(_train_args(["--num-processes", "2"])) == 2
    assert "go together" in capsys.readouterr().err
    with pytest.raises(gf.InputError, match="process_id must be in"):
        dist.initialize("127.0.0.1:1234", 2, 5)
    with pytest.raises(gf.InputError, match="HOST:PORT"):
        dist.initialize("localhost", 2, 0)
