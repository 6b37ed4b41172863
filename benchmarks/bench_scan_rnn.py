"""A scan-based recurrence train step: graphforge (``gf.scan`` in an ``nn.Module`` trained by
``gf.Trainer``) vs the same model written by hand with ``jax.lax.scan`` + optax. Target ratio
graphforge / hand-written JAX ≤ 1.05 (issue #15).

The model is a 256-step elementwise RNN: ``h_t = tanh(a * h_{t-1} + b * x_t + c)`` with per-unit
parameters ``a, b, c`` of size H, over ``xs`` of shape (T=256, batch 32, H=256); the loss is the mean
of ``ys²`` (every step's state). Both sides: float32, the same initial weights and batch, adam(1e-3),
jitted with parameters and optimiser state donated, synchronised per step. The first step's loss is
recorded per side (equal losses = the same function was timed). With ``--onnx`` and an ONNX lowering
of ``scan`` (branch cf-onnx), the forward pass's onnxruntime latency is measured too.

    python benchmarks/bench_scan_rnn.py [--steps 256] [--rounds 15] [--json out.json] [--tiny]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, hand_jax_step, interleaved_medians, write_results  # noqa: E402

__all__ = ["make_steps", "measure", "main"]


def _model(hidden: int):
    import graphforge as gf
    from graphforge import nn

    class ElementwiseRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter((hidden,))
            self.b = nn.Parameter((hidden,))
            self.c = nn.Parameter((hidden,))

        def forward(self, xs):
            h0 = gf.zeros((xs.shape[1], hidden))
            _, ys = gf.scan(lambda h, x: (gf.tanh(self.a * h + self.b * x + self.c),) * 2, h0, xs)
            return ys

    return ElementwiseRNN()


def _inputs(steps, batch, hidden, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((steps, batch, hidden)).astype(np.float32)
    params = {"a": rng.uniform(0.5, 0.9, hidden).astype(np.float32),
              "b": rng.uniform(0.5, 1.5, hidden).astype(np.float32),
              "c": (rng.standard_normal(hidden) * 0.1).astype(np.float32)}
    return xs, params


def _gf_step(steps, batch, hidden, xs, params):
    import jax.numpy as jnp
    import optax

    import graphforge as gf
    from graphforge.runtimes.jax import x64

    model = _model(hidden)
    model.load_state_dict(params)
    t = gf.Trainer(model, loss_fn=lambda ys: (ys * ys).mean(), optimizer=optax.adam(1e-3),
                   inputs=[gf.TensorSpec((steps, "batch", hidden))], targets=[], seed=0, progress=False)
    with x64():
        xd = jnp.asarray(xs)
    return lambda: t.train_step(xd, [])["loss"].block_until_ready()


def _jax_step(xs, params):
    import jax
    import jax.numpy as jnp
    import optax

    def loss_fn(p, xs):
        def step(h, x):
            h = jnp.tanh(p["a"] * h + p["b"] * x + p["c"])
            return h, h
        _, ys = jax.lax.scan(step, jnp.zeros(xs.shape[1:], xs.dtype), xs)
        return (ys * ys).mean()

    return hand_jax_step(loss_fn, optax.adam(1e-3), params, xs)


def make_steps(steps=256, batch=32, hidden=256):
    xs, params = _inputs(steps, batch, hidden)
    return {"graphforge": _gf_step(steps, batch, hidden, xs, params), "jax": _jax_step(xs, params)}, xs, params


def _onnx_latency(steps, hidden, xs, params, rounds):
    """Forward latency in onnxruntime, when the ONNX back end lowers scan (else None)."""
    try:
        import graphforge as gf
        from graphforge.runtimes import onnx as gf_onnx
    except ImportError:
        return None
    if "scan" not in gf_onnx.LOWERINGS:
        return None
    model = _model(hidden)
    model.load_state_dict(params)
    g = gf.optimize(gf.trace(model, gf.TensorSpec((steps, "batch", hidden)), seed=0))
    session = gf_onnx.OrtSession(g)
    res = interleaved_medians({"graphforge-ort": lambda: session.run([xs])}, rounds=rounds, warmup=2)
    return res["graphforge-ort"]


def measure(steps=256, batch=32, hidden=256, rounds=15, onnx=False, tiny=False) -> dict:
    contenders, xs, params = make_steps(steps, batch, hidden)
    first_loss = {n: float(np.asarray(fn())) for n, fn in contenders.items()}
    res = interleaved_medians(contenders, rounds=rounds, warmup=1 if tiny else 5, min_chunk_s=0.002 if tiny else 0.05)
    row = {"case": f"rnn{steps}", "steps": steps, "batch": batch, "hidden": hidden, "first_loss": first_loss,
           "results": res, "ratio_gf_jax": res["graphforge"]["median_s"] / res["jax"]["median_s"]}
    if onnx:
        row["onnx"] = _onnx_latency(steps, hidden, xs, params, rounds)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--onnx", action="store_true", help="also time the forward pass in onnxruntime")
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.batch, args.hidden, args.rounds = 8, 2, 4, 3
    row = measure(args.steps, args.batch, args.hidden, args.rounds, args.onnx, args.tiny)
    rs = row["results"]
    print(f"| {row['case']} (batch {row['batch']}, H {row['hidden']}) | graphforge {rs['graphforge']['median_s'] * 1e3:.3f} ms"
          f" | lax.scan+optax {rs['jax']['median_s'] * 1e3:.3f} ms | ratio {row['ratio_gf_jax']:.3f} |"
          f" first losses {row['first_loss']}")
    if row.get("onnx"):
        print(f"| onnxruntime forward | {row['onnx']['median_s'] * 1e3:.3f} ms |")
    write_results(args.json, "scan_rnn", [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
