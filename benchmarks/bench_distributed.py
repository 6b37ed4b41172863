"""Data-parallel ``gf.Trainer`` throughput (samples/s) at 1, 2, 4, 8 simulated CPU devices, and the
per-step communication volume XLA compiled into the step (bytes of all-reduce / all-gather / ... in
the compiled HLO). One subprocess per device count (``XLA_FLAGS=--xla_force_host_platform_device_count=N``
must be set before jax starts). Cases: MLP 784-128-10 (cross-entropy, adam, global batch 512) and a
Transformer encoder (2 layers, d=64, 4 heads, FFN 256, seq 32, global batch 32, adam); at 8 devices
the encoder also runs on a data=4 x model=2 mesh (default feed-forward sharding rules).

Simulated devices share the machine's real cores: on a 2-core CPU the numbers show the overhead
of partitioning and collectives, not a speed-up (a gain at 2 devices is just both cores busy).

    python benchmarks/bench_distributed.py [--steps N] [--devices 1,2,4,8] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import write_json  # noqa: E402

CASES = ("mlp", "encoder")


def _trainer(case: str, mesh):
    import optax
    import graphforge as gf
    from graphforge import nn

    if case == "mlp":
        model = nn.seq().add(nn.Linear(784, 128)).add_fn(gf.relu).add(nn.Linear(128, 10))
        return gf.Trainer(model, nn.functional.cross_entropy, optax.adam(1e-3),
                          inputs=[gf.TensorSpec(("batch", 784))], targets=gf.TensorSpec(("batch",), "int64"),
                          progress=False, mesh=mesh)

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.TransformerEncoder(num_layers=2, d_model=64, nhead=4, dim_feedforward=256, dropout=0.0)

        def forward(self, x):
            return self.enc(x)

    return gf.Trainer(Enc(), lambda out: (out * out).mean(), optax.adam(1e-3),
                      inputs=[gf.TensorSpec(("batch", 32, 64))], targets=[], progress=False, mesh=mesh)


def _batch(case: str):
    rng = np.random.default_rng(0)
    if case == "mlp":
        return rng.standard_normal((512, 784)).astype(np.float32), rng.integers(0, 10, 512)
    return rng.standard_normal((32, 32, 64)).astype(np.float32), []


def worker(case: str, mesh_text: str, steps: int) -> dict:
    """Runs inside the subprocess: time ``steps`` train steps, read the step's collectives."""
    import jax
    from graphforge.train import distributed as dist

    mesh = None if mesh_text == "auto" else {k: int(v) for k, v in (p.split("=") for p in mesh_text.split(","))}
    t = _trainer(case, mesh)
    x, y = _batch(case)
    # the batch is placed on the mesh once, as a data loader with prefetch would do
    if t.distributed is not None:
        xs = t.distributed.place(x, t.distributed.batch_sharded)
        ys = t.distributed.place(y, t.distributed.batch_sharded) if len(y) else []
    else:
        import jax.numpy as jnp
        from graphforge.runtimes.jax import x64
        with x64():
            xs, ys = jnp.asarray(x), (jnp.asarray(y) if len(y) else [])
    comm = dist.collective_bytes(t.compiled_step(x, y).as_text())
    for _ in range(3):
        t.train_step(xs, ys)["loss"].block_until_ready()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        t.train_step(xs, ys)["loss"].block_until_ready()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"case": case, "devices": jax.device_count(), "mesh": dict(t.distributed.mesh.shape) if t.distributed
            else {"data": 1}, "batch": len(x), "step_ms": med * 1e3, "samples_per_s": len(x) / med,
            "comm_bytes": comm}


def _run_one(case: str, devices: int, mesh: str, steps: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, __file__, "--worker", case, "--mesh", mesh, "--steps", str(steps)],
                          env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"worker {case}@{devices} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--devices", default="1,2,4,8")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--mesh", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.mesh, args.steps)))
        return 0
    counts = [int(c) for c in args.devices.split(",")]
    rows = []
    for case in CASES:
        for n in counts:
            rows.append(_run_one(case, n, "auto", args.steps))
        if case == "encoder" and 8 in counts:
            rows.append(_run_one(case, 8, "data=4,model=2", args.steps))
    cores = os.cpu_count()
    print(f"data-parallel gf.Trainer on simulated CPU devices ({cores} real cores, median of {args.steps} steps)")
    print(f"{'case':8} {'devices':>7} {'mesh':>16} {'batch':>5} {'step ms':>9} {'samples/s':>10} "
          f"{'comm bytes/step':>16}  collectives")
    base = {}
    for r in rows:
        mesh = "x".join(f"{k}={v}" for k, v in r["mesh"].items())
        base.setdefault(r["case"], r["samples_per_s"])
        kinds = ", ".join(f"{k} {v}" for k, v in r["comm_bytes"].items() if k != "total") or "-"
        print(f"{r['case']:8} {r['devices']:>7} {mesh:>16} {r['batch']:>5} {r['step_ms']:>9.2f} "
              f"{r['samples_per_s']:>10.0f} {r['comm_bytes']['total']:>16}  {kinds}"
              f"   ({r['samples_per_s'] / base[r['case']]:.2f}x of 1 device)")
    print(f"note: the simulated devices share {cores} real CPU cores: past {cores} devices nothing can run faster "
          "(a gain up to that is XLA keeping more cores busy), so these figures show the overhead of SPMD "
          "partitioning and collectives, not a scaling result.")
    if args.json:
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
