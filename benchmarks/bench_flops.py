"""Achieved GFLOP/s of each train step against the machine's measured matmul peak.

Peak: the best of several float32 matmuls of a large square (NumPy's BLAS and ``jax.jit``'s XLA dot;
2·n³ FLOPs each). Work per train step: graphforge's own count over the gradient graph the trainer
runs (each op's registered ``flops``, batch bound to the case's batch: forward + backward, the
optimizer's elementwise update is left out), cross-checked by XLA's ``cost_analysis`` of the
hand-written JAX step. Achieved = that work / the median step time of each contender, taken from
``--train-json`` (the train-step benchmark's output) or measured here when it is not given.

    python benchmarks/bench_flops.py [--train-json train.json] [--n 2048] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, write_results  # noqa: E402
from benchmarks.models import MODELS, gf_params, jax_loss  # noqa: E402

__all__ = ["matmul_peak", "step_flops", "measure", "main"]


def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
    """Best GFLOP/s of an n×n float32 matmul with NumPy and with jax.jit."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    flops = 2.0 * n ** 3
    best = {}
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    dot = jax.jit(jnp.dot)
    for name, fn in (("numpy", lambda: a @ b), ("jax", lambda: dot(ja, jb).block_until_ready())):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        best[name] = flops / min(times) / 1e9
    return {"n": n, "gflops": best, "peak_gflops": max(best.values())}


def step_flops(spec, batch: int) -> dict:
    """FLOPs of one train step: graphforge's count of its gradient graph, XLA's of hand-written JAX."""
    import jax
    import jax.numpy as jnp
    import optax

    import graphforge as gf
    from graphforge.summary import graph_flops

    concrete = gf.TensorSpec((batch,) + tuple(spec.spec().shape[1:]), "float32")
    target = gf.TensorSpec((batch,), "int64") if spec.loss == "cross_entropy" else []
    t = gf.Trainer(spec.gf_model(), loss_fn=spec.gf_loss(), optimizer=optax.adam(1e-3), inputs=[concrete],
                   targets=target, seed=0, progress=False)
    ours = graph_flops(t.grad_graph)
    p = {k: jnp.asarray(v) for k, v in gf_params(spec).items()}
    x, y = spec.inputs(batch)
    yj = jnp.asarray(y.astype(np.int32)) if y is not None else None
    compiled = jax.jit(jax.value_and_grad(jax_loss(spec))).lower(p, jnp.asarray(x), yj).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return {"graphforge_count": int(ours), "xla_count": float(cost.get("flops", float("nan"))) if cost else None}


def measure(train_rows: list[dict] | None = None, tiny: bool = False, n: int = 2048) -> dict:
    from benchmarks.bench_train_step import CASES, measure as train_measure

    peak = matmul_peak(256 if tiny else n, 2 if tiny else 5)
    if train_rows is None:
        train_rows = [train_measure(case, rounds=3 if tiny else 7, tiny=tiny) for case in CASES]
    rows = []
    for r in train_rows:
        spec = MODELS[r["model"]].scaled(**r["sizes"])
        batch = r["batch"]
        f = step_flops(spec, batch)
        achieved = {name: f["graphforge_count"] / res["median_s"] / 1e9 for name, res in r["results"].items()}
        rows.append({"case": r["case"], "flops": f, "gflops": achieved,
                     "fraction_of_peak": {k: v / peak["peak_gflops"] for k, v in achieved.items()}})
    return {"peak": peak, "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-json", help="the train-step benchmark's --json output (else measured here)")
    parser.add_argument("--n", type=int, default=2048, help="matmul size for the peak")
    add_common_args(parser)
    args = parser.parse_args(argv)
    rows = None
    if args.train_json:
        with open(args.train_json) as f:
            rows = json.load(f)["train_step"]
    out = measure(rows, args.tiny, args.n)
    pk = out["peak"]
    print(f"matmul peak ({pk['n']}² float32): " + ", ".join(f"{k} {v:.1f}" for k, v in pk["gflops"].items()) + " GFLOP/s")
    print(f"{'case':12s} {'MFLOP/step':>11s} {'XLA MFLOP':>10s}  achieved GFLOP/s (fraction of peak)")
    for r in out["rows"]:
        ach = "  ".join(f"{k} {v:.2f} ({r['fraction_of_peak'][k]:.1%})" for k, v in r["gflops"].items())
        xla = r["flops"]["xla_count"]
        print(f"{r['case']:12s} {r['flops']['graphforge_count'] / 1e6:11.1f} {(xla or float('nan')) / 1e6:10.1f}  {ach}")
    write_results(args.json, "flops", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
