"""Data-parallel and model-sharded ``gf.Trainer`` on 8 simulated CPU devices equals single-device
training: MLP (via ``fit``, with a ragged last batch), a Transformer encoder (data-parallel and
data=4 x model=2 with the default feed-forward rules), shardings, checkpoints and the HLO
communication volume. The 8 devices live in one subprocess (``spmd_worker.py``) so the device count
of the rest of the suite is untouched."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from graphforge.train.trainer import TIMING_KEYS

pytest.importorskip("optax")

WORKER = os.path.join(os.path.dirname(__file__), "spmd_worker.py")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spmd")
    out = tmp / "out.json"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, WORKER, str(out), str(tmp / "ckpt")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def test_runs_on_eight_devices_with_a_default_data_mesh(results):
    assert results["devices"] == 8
    assert results["mlp_dp_mesh"] == {"data": 8}
    assert results["mlp_single_plan"] == "None"  # a one-device mesh is the plain single-device step
    assert results["mlp_param_spec"] == []        # params replicated
    assert results["mlp_batch_spec"] == ["data"]  # batch split over the data axis


def test_global_batch_from_process_local_rows(results):
    assert results["global_batch"] == {"spec": ["data"], "dtype": "int64", "equal": True, "passes_through": True}


def test_mlp_data_parallel_losses_equal_single_device(results):
    single, dp = np.array(results["mlp_single_losses"]), np.array(results["mlp_dp_losses"])
    assert len(single) == len(dp) == 20
    np.testing.assert_allclose(dp, single, rtol=0, atol=1e-5)
    assert single[-1] < single[0]  # it trains
    for key, values in results["mlp_single_history"].items():
        if key in TIMING_KEYS:
            continue  # wall-clock throughput differs run to run
        np.testing.assert_allclose(results["mlp_dp_history"][key], values, rtol=0, atol=1e-5)
    assert results["mlp_predict_diff"] < 1e-5


def test_ragged_batches_fall_back_with_a_clear_warning(results):
    # 156 rows / batch 16 leaves 12 (training) and validation runs 50 rows: neither divides 8
    msgs = results["mlp_warnings"]
    assert any("12 rows does not divide" in m and "replicated" in m for m in msgs)
    assert any("50 rows" in m for m in msgs)


def test_encoder_data_parallel_and_model_sharded_losses_equal_single_device(results):
    single = np.array(results["enc_single_losses"])
    assert len(single) == 20 and single[-1] < single[0]
    np.testing.assert_allclose(results["enc_dp_losses"], single, rtol=0, atol=1e-5)
    np.testing.assert_allclose(results["enc_sharded_losses"], single, rtol=0, atol=1e-5)
    assert results["enc_sharded_vs_single_params"] < 1e-3


def test_default_rules_shard_the_feed_forward_and_its_optimizer_state(results):
    assert results["enc_sharded_params"] == {
        "enc.layers.0.ffn.fc1.weight": ["model", None],
        "enc.layers.0.ffn.fc1.bias": ["model"],
        "enc.layers.0.ffn.fc2.weight": [None, "model"],
    }
    assert results["enc_fc1_spec"] == ["model", None]
    assert results["enc_fc2_spec"] == [None, "model"]
    assert results["enc_fc1_mu_spec"] == ["model", None]   # adam's moments follow the param
    assert results["enc_fc1_local_shape"] == [16, 16]      # (32, 16) split in two over `model`


def test_checkpoint_of_a_sharded_run_loads_on_one_device(results):
    assert results["ckpt_roundtrip_equal"] is True


def test_hlo_communication_volume_is_the_gradient_all_reduce(results):
    # every gradient (float32) is all-reduced once; loss and accuracy add one scalar each
    col = results["mlp_collectives"]
    assert col["all-reduce"] == 4 * results["mlp_param_count"] + 2 * 4
    assert col["total"] == col["all-reduce"]
    assert results["enc_sharded_collectives"]["total"] > 0
