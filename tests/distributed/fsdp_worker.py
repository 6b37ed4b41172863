"""Run in a subprocess with 4 simulated CPU devices: FSDP vs single-device training of an MLP."""
from __future__ import annotations

import json
import sys

import numpy as np
import optax

import graphforge as gf
from graphforge import nn


def trainer(**kw):
    net = nn.seq().add(nn.Linear(64, 256)).add_fn(gf.relu).add(nn.Linear(256, 256)).add_fn(gf.relu)
    net = net.add(nn.Linear(256, 10))
    return gf.Trainer(net, loss_fn=nn.functional.cross_entropy, optimizer=optax.adam(1e-3),
                      inputs=[gf.TensorSpec(("batch", 64))], targets=gf.TensorSpec(("batch",), "int64"),
                      seed=0, progress=False, **kw)


def main(out_path: str) -> None:
    import jax

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 64)).astype(np.float32)
    y = rng.integers(0, 10, 64).astype(np.int64)
    single = trainer(mesh={"data": 1})
    fsdp = trainer(mesh={"data": 4}, sharding="fsdp")
    losses = {"single": [], "fsdp": []}
    for i in range(8):
        xb, yb = x[(i % 4) * 16:(i % 4) * 16 + 16], y[(i % 4) * 16:(i % 4) * 16 + 16]
        losses["single"].append(float(single.train_step(xb, yb)["loss"]))
        losses["fsdp"].append(float(fsdp.train_step(xb, yb)["loss"]))
    specs = {n: [str(a) for a in v.sharding.spec] for n, v in fsdp.device_params.items()}
    hlo = fsdp.compiled_step(x[:16], y[:16]).as_text()
    json.dump({"devices": jax.device_count(), "losses": losses, "specs": specs,
               "single_bytes": single.device_bytes(), "fsdp_bytes": fsdp.device_bytes(),
               "all_gather": "all-gather" in hlo,
               "max_param_diff": max(float(np.abs(fsdp.params[k] - v).max()) for k, v in single.params.items())},
              open(out_path, "w"))


if __name__ == "__main__":
    main(sys.argv[1])
