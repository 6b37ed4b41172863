"""Subprocess body of tests/distributed/test_data_parallel.py: runs on 8 simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, set by the test for this process only) and
prints one JSON line with everything the tests compare (losses, shardings, HLO collective bytes).

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/distributed/spmd_worker.py OUT.json CKPT_DIR
"""
from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import optax

import graphforge as gf
from graphforge import nn
from graphforge.train import distributed as dist

__all__ = ["main"]


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Linear(12, 32)
        self.layer2 = nn.Linear(32, 4)

    def forward(self, x):
        return self.layer2(self.layer1(x).relu())


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.TransformerEncoder(num_layers=1, d_model=16, nhead=2, dim_feedforward=32, dropout=0.1)

    def forward(self, x):
        return self.enc(x)


def mlp_trainer(mesh):
    return gf.Trainer(MLP(), loss_fn=nn.functional.cross_entropy, optimizer=optax.adam(1e-2),
                      inputs=[gf.TensorSpec(("batch", 12))], targets=gf.TensorSpec(("batch",), "int64"),
                      metrics={"accuracy": nn.functional.accuracy}, seed=0, progress=False, mesh=mesh)


def encoder_trainer(mesh, param_sharding=None):
    return gf.Trainer(Encoder(), loss_fn=lambda out: (out * out).mean(), optimizer=optax.adam(1e-3),
                      inputs=[gf.TensorSpec(("batch", 6, 16))], targets=[], seed=0, progress=False, mesh=mesh,
                      param_sharding=param_sharding)


def _spec(arr) -> list:
    return [None if e is None else str(e) for e in arr.sharding.spec]


def main(out_path: str, ckpt_dir: str) -> None:
    import jax

    res: dict = {"devices": jax.device_count()}
    rng = np.random.default_rng(0)
    # 156 rows, batch 16: 9 full batches + one of 12 rows, which does not divide 8 devices (fallback)
    x = rng.standard_normal((156, 12)).astype(np.float32)
    y = rng.integers(0, 4, 156)
    single, dp = mlp_trainer({"data": 1}), mlp_trainer(None)
    res["mlp_single_plan"] = repr(single.distributed)
    res["mlp_dp_mesh"] = dict(dp.distributed.mesh.shape)
    hs = single.fit(x, y, epochs=2, batch_size=16, validation_data=(x[:50], y[:50]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hd = dp.fit(x, y, epochs=2, batch_size=16, validation_data=(x[:50], y[:50]))
    res["mlp_warnings"] = [str(w.message) for w in caught if "does not divide" in str(w.message)]
    res["mlp_single_losses"], res["mlp_dp_losses"] = single.step_losses, dp.step_losses
    res["mlp_single_history"], res["mlp_dp_history"] = hs, hd
    res["mlp_predict_diff"] = float(np.max(np.abs(single.predict(x[:40]) - dp.predict(x[:40]))))
    res["mlp_param_spec"] = _spec(dp.device_params["layer1.weight"])
    res["mlp_batch_spec"] = _spec(dp.distributed.place_inputs([x[:16]], [np.float32])[0])
    gy = dp.distributed.global_batch(y[:16])  # what a per-process data loader would build
    res["global_batch"] = {"spec": _spec(gy), "dtype": str(gy.dtype), "equal": bool(np.array_equal(gy, y[:16])),
                           "passes_through": dp.distributed.place(gy, dp.distributed.batch_sharded, gy.dtype) is gy}
    comp = dp.compiled_step(x[:16], y[:16])
    res["mlp_collectives"] = dist.collective_bytes(comp.as_text())
    res["mlp_param_count"] = int(sum(np.size(v) for v in dp.params.values()))
    # checkpoint of the data-parallel run, read back by a single-device trainer
    dp.save_checkpoint(ckpt_dir)
    back = mlp_trainer({"data": 1})
    back.load_checkpoint(ckpt_dir)
    res["ckpt_roundtrip_equal"] = all(np.array_equal(back.params[k], v) for k, v in dp.params.items())

    xe = rng.standard_normal((40, 6, 16)).astype(np.float32)
    runs = {"single": encoder_trainer({"data": 1}), "dp": encoder_trainer(None),
            "sharded": encoder_trainer({"data": 4, "model": 2})}
    for name, t in runs.items():
        losses = []
        for s in range(20):
            i = (s * 8) % len(xe)
            losses.append(float(t.train_step(xe[i:i + 8], [])["loss"]))
        res[f"enc_{name}_losses"] = losses
    sh = runs["sharded"]
    res["enc_sharded_params"] = {k: [None if e is None else str(e) for e in v]
                                 for k, v in sh.distributed.param_specs.items()}
    res["enc_fc1_spec"] = _spec(sh.device_params["enc.layers.0.ffn.fc1.weight"])
    res["enc_fc2_spec"] = _spec(sh.device_params["enc.layers.0.ffn.fc2.weight"])
    res["enc_fc1_mu_spec"] = _spec(sh.opt_state[0].mu["enc.layers.0.ffn.fc1.weight"])
    res["enc_fc1_local_shape"] = list(sh.device_params["enc.layers.0.ffn.fc1.weight"].addressable_shards[0].data.shape)
    res["enc_sharded_vs_single_params"] = float(max(
        np.max(np.abs(runs["single"].params[k] - v)) for k, v in sh.params.items()))
    res["enc_sharded_collectives"] = dist.collective_bytes(sh.compiled_step(xe[:8], []).as_text())
    with open(out_path, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
