"""Median train-step time: graphforge-JAX (``gf.Trainer.train_step``) vs the same model written by
hand in JAX + optax, in one run. Target ratio graphforge / hand-written ≤ 1.05.

Cases: MLP 784-128-10 (cross-entropy, adam) at batch 128 and 1024; Transformer encoder (2 layers,
d=128, 4 heads, FFN 512, post-norm, ReLU, dropout 0, seq 64, batch 32, loss mean(out²), adam).
Both sides: float32, jitted, buffers donated, timed per step with ``block_until_ready``.

    python benchmarks/bench_train_step.py [--steps N] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _median_step(step_fn, steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step_fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step_fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _device(*arrays):
    """Device-resident batches (both sides get the same: no host→device copy inside the step)."""
    import jax.numpy as jnp
    from graphforge.runtimes.jax import x64
    with x64():
        return [jnp.asarray(a) for a in arrays]


# ---- graphforge side --------------------------------------------------------------------------

def gf_mlp(batch, steps):
    import optax
    import graphforge as gf
    from graphforge import nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1 = nn.Linear(784, 128)
            self.layer2 = nn.Linear(128, 10)

        def forward(self, x):
            return self.layer2(self.layer1(x).relu())

    t = gf.Trainer(MLP(), loss_fn=nn.functional.cross_entropy, optimizer=optax.adam(1e-3),
                   inputs=[gf.TensorSpec(("batch", 784))], targets=gf.TensorSpec(("batch",), "int64"),
                   seed=0, progress=False)
    rng = np.random.default_rng(0)
    x, y = _device(rng.standard_normal((batch, 784)).astype(np.float32), rng.integers(0, 10, batch))
    return _median_step(lambda: t.train_step(x, y)["loss"].block_until_ready(), steps)


def gf_transformer(batch, steps, seq=64, d=128, heads=4, ffn=512):
    import optax
    import graphforge as gf
    from graphforge import nn

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.TransformerEncoder(num_layers=2, d_model=d, nhead=heads, dim_feedforward=ffn, dropout=0.0)

        def forward(self, x):
            return self.enc(x)

    t = gf.Trainer(Enc(), loss_fn=lambda out: (out * out).mean(), optimizer=optax.adam(1e-3),
                   inputs=[gf.TensorSpec(("batch", seq, d))], targets=[], seed=0, progress=False)
    (x,) = _device(np.random.default_rng(0).standard_normal((batch, seq, d)).astype(np.float32))
    return _median_step(lambda: t.train_step(x, [])["loss"].block_until_ready(), steps)


# ---- hand-written JAX + optax ------------------------------------------------------------------

def jax_mlp(batch, steps):
    import jax
    import jax.numpy as jnp
    import optax

    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    params = {"w1": jax.random.normal(k1, (128, 784)) * 0.03, "b1": jnp.zeros(128),
              "w2": jax.random.normal(k2, (10, 128)) * 0.08, "b2": jnp.zeros(10)}
    opt = optax.adam(1e-3)
    state = opt.init(params)

    def loss_fn(p, x, y):
        h = jax.nn.relu(x @ p["w1"].T + p["b1"])
        logits = h @ p["w2"].T + p["b2"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(p, s, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, 784)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, batch).astype(np.int32))
    box = [params, state]

    def one():
        box[0], box[1], loss = step(box[0], box[1], x, y)
        loss.block_until_ready()
    return _median_step(one, steps)


def jax_transformer(batch, steps, seq=64, d=128, heads=4, ffn=512):
    import jax
    import jax.numpy as jnp
    import optax

    keys = iter(jax.random.split(jax.random.PRNGKey(0), 16))

    def lin(i, o):
        return {"w": jax.random.normal(next(keys), (i, o)) / np.sqrt(i), "b": jnp.zeros(o)}

    params = [{"qkv": lin(d, 3 * d), "out": lin(d, d), "fc1": lin(d, ffn), "fc2": lin(ffn, d),
               "ln1": (jnp.ones(d), jnp.zeros(d)), "ln2": (jnp.ones(d), jnp.zeros(d))} for _ in range(2)]

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) * jax.lax.rsqrt(var + 1e-5) * p[0] + p[1]

    def layer(x, p):
        b, s, _ = x.shape
        qkv = (x @ p["qkv"]["w"] + p["qkv"]["b"]).reshape(b, s, 3, heads, d // heads)
        a = jax.nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]).reshape(b, s, d)
        x = ln(x + a @ p["out"]["w"] + p["out"]["b"], p["ln1"])
        h = jax.nn.relu(x @ p["fc1"]["w"] + p["fc1"]["b"]) @ p["fc2"]["w"] + p["fc2"]["b"]
        return ln(x + h, p["ln2"])

    def loss_fn(ps, x):
        for p in ps:
            x = layer(x, p)
        return (x * x).mean()

    opt = optax.adam(1e-3)
    state = opt.init(params)

    def step(p, s, x):
        loss, g = jax.value_and_grad(loss_fn)(p, x)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, seq, d)).astype(np.float32))
    box = [params, state]

    def one():
        box[0], box[1], loss = step(box[0], box[1], x)
        loss.block_until_ready()
    return _median_step(one, steps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="5 steps per case")
    args = parser.parse_args(argv)
    steps = 5 if args.quick else args.steps
    import jax
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; median of {steps} steps")
    cases = [("MLP 784-128-10, batch 128", lambda: gf_mlp(128, steps), lambda: jax_mlp(128, steps)),
             ("MLP 784-128-10, batch 1024", lambda: gf_mlp(1024, steps), lambda: jax_mlp(1024, steps)),
             ("Transformer enc 2x(d128,h4), seq 64, batch 32",
              lambda: gf_transformer(32, steps), lambda: jax_transformer(32, steps))]
    print(f"{'case':48s} {'graphforge ms':>14s} {'hand JAX ms':>12s} {'ratio':>7s}")
    for name, gf_fn, jax_fn in cases:
        g, j = gf_fn(), jax_fn()
        print(f"{name:48s} {g * 1e3:14.3f} {j * 1e3:12.3f} {g / j:7.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
