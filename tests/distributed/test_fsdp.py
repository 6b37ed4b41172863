"""sharding="fsdp" on 4 simulated CPU devices: params and optimizer state sharded over "data",
~4x fewer bytes per device, losses equal to single-device training within 1e-5."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from graphforge.errors import ConfigError
from graphforge.train.fsdp import fsdp_rules

WORKER = os.path.join(os.path.dirname(__file__), "fsdp_worker.py")


def test_rules_shard_large_params_along_a_divisible_dim():
    rules = fsdp_rules({"a.weight": (256, 64), "a.bias": (256,), "b.weight": (10, 256), "c.weight": (3, 5)}, 4,
                       min_size=1024)
    assert rules == {"a.weight": ("data",), "b.weight": (None, "data")}
    assert fsdp_rules({"a.weight": (256, 64)}, 1) == {}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp") / "out.json"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, WORKER, str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def test_losses_equal_single_device(results):
    assert results["devices"] == 4
    np.testing.assert_allclose(results["losses"]["fsdp"], results["losses"]["single"], rtol=0, atol=1e-5)
    assert results["max_param_diff"] < 1e-5
    assert results["all_gather"]  # XLA gathers the sharded weights where the layers use them


def test_per_device_bytes_drop_about_n_times(results):
    assert results["specs"]["2.weight"] == ["data"] or "data" in results["specs"]["2.weight"]
    single, fsdp = results["single_bytes"], results["fsdp_bytes"]
    for key in ("params", "optimizer"):
        assert single[key] / fsdp[key] > 3.5, (key, single, fsdp)


def test_fsdp_does_not_combine_with_param_rules():
    import optax

    import graphforge as gf
    from graphforge import nn

    with pytest.raises(ConfigError, match="fsdp"):
        gf.Trainer(nn.Linear(4, 2), loss_fn=lambda p, t: gf.mean((p - t) ** 2), optimizer=optax.sgd(0.1),
                   inputs=[gf.TensorSpec(("batch", 4))], targets=gf.TensorSpec(("batch", 2)), sharding="fsdp",
                   param_sharding={"*": ("data",)}, progress=False)
    with pytest.raises(ConfigError):
        gf.Trainer(nn.Linear(4, 2), loss_fn=lambda p, t: gf.mean((p - t) ** 2), optimizer=optax.sgd(0.1),
                   inputs=[gf.TensorSpec(("batch", 4))], targets=gf.TensorSpec(("batch", 2)), sharding="zero9",
                   progress=False)
