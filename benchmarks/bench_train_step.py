"""Median train-step time: graphforge-JAX (``gf.Trainer.train_step``) vs the same model written by
hand in JAX + optax vs PyTorch eager on the CPU (when torch is importable). Target ratio
graphforge / hand-written JAX ≤ 1.05.

Cases (``--case``): ``mlp128``, ``mlp1024`` (MLP 784-128-10, cross-entropy), ``lenet`` (LeNet-5-style
CNN on 28×28, batch 128), ``resnet8`` (ResNet-8 with training-mode BatchNorm on 16×16 digits, batch
128; every side also updates the running statistics), ``transformer`` (2-layer encoder, d=128, 4 heads, FFN 512, seq 64, batch
32, loss mean(out²)). Every side: float32, the same initial weights (graphforge's, loaded into the
others), the same batch, adam(1e-3); the JAX sides are jitted with the params/optimizer state
donated and synchronised per step with ``block_until_ready``; the batch is already on the device.
The first step's loss is recorded per side (equal losses = the same function was timed).

    python benchmarks/bench_train_step.py [--case mlp128,...] [--rounds 15] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, interleaved_medians, write_results  # noqa: E402
from benchmarks.models import (MODELS, TINY, gf_buffers, gf_params, jax_loss, jax_loss_with_state,  # noqa: E402
                               torch_available, torch_loss)

__all__ = ["CASES", "make_steps", "measure", "main"]

# case name -> (model, batch)
CASES = {"mlp128": ("mlp", 128), "mlp1024": ("mlp", 1024), "lenet": ("lenet", 128), "resnet8": ("resnet8", 128),
         "transformer": ("transformer", 32)}
TINY_BATCH = 4


def _gf_step(spec, params, x, y):
    import jax.numpy as jnp
    import optax

    import graphforge as gf
    from graphforge.runtimes.jax import x64

    target = gf.TensorSpec(("batch",), "int64") if y is not None else []
    t = gf.Trainer(spec.gf_model(), loss_fn=spec.gf_loss(), optimizer=optax.adam(1e-3), inputs=[spec.spec()],
                   targets=target, seed=0, progress=False)
    with x64():
        xd = jnp.asarray(x)
        yd = jnp.asarray(y) if y is not None else []
    return lambda: t.train_step(xd, yd)["loss"].block_until_ready(), t


def _jax_step(spec, params, x, y):
    import jax
    import jax.numpy as jnp
    import optax

    p = {k: jnp.asarray(v) for k, v in params.items()}
    bufs = {k: jnp.asarray(v) for k, v in gf_buffers(spec).items()}
    opt = optax.adam(1e-3)
    xd = jnp.asarray(x)
    yd = jnp.asarray(y.astype(np.int32)) if y is not None else None
    if bufs:   # BatchNorm: the running statistics are carried (and donated) like the params
        loss_fn = jax_loss_with_state(spec)

        def step(p, b, s, x, y):
            (loss, b), g = jax.value_and_grad(loss_fn, has_aux=True)(p, b, x, y)
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), b, s, loss

        step = jax.jit(step, donate_argnums=(0, 1, 2))
        box = [p, bufs, opt.init(p)]

        def one():
            box[0], box[1], box[2], loss = step(box[0], box[1], box[2], xd, yd)
            return loss.block_until_ready()
        return one, (step, box, xd, yd)
    loss_fn = jax_loss(spec)

    def step(p, s, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    box = [p, opt.init(p)]

    def one():
        box[0], box[1], loss = step(box[0], box[1], xd, yd)
        return loss.block_until_ready()
    return one, (step, box, xd, yd)


def _torch_step(spec, params, x, y):
    import torch

    model = spec.torch_model()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in {**params, **gf_buffers(spec)}.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # only BatchNorm's step counter (torch-only bookkeeping) may be left at its default
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch_loss(spec)
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y) if y is not None else None

    def one():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        return loss.detach()
    return one, model


def make_steps(case: str, tiny: bool = False, torch: bool | None = None) -> tuple[dict, dict]:
    """``({contender: step_fn}, info)`` for one case; each step_fn runs one synchronous train step."""
    model, batch = CASES[case]
    spec = MODELS[model].scaled(**TINY[model]) if tiny else MODELS[model]
    batch = TINY_BATCH if tiny else batch
    params = gf_params(spec)
    x, y = spec.inputs(batch)
    steps = {"graphforge": _gf_step(spec, params, x, y)[0], "jax": _jax_step(spec, params, x, y)[0]}
    if torch if torch is not None else torch_available():
        import torch as _torch
        steps["torch"] = _torch_step(spec, params, x, y)[0]
        return steps, {"model": model, "batch": batch, "sizes": spec.sizes, "torch_threads": _torch.get_num_threads()}
    return steps, {"model": model, "batch": batch, "sizes": spec.sizes}


def measure(case: str, rounds: int = 15, tiny: bool = False, torch: bool | None = None) -> dict:
    steps, info = make_steps(case, tiny, torch)
    # the first step of each side from the same weights and batch: equal losses = same model
    first_loss = {n: float(np.asarray(fn())) for n, fn in steps.items()}
    res = interleaved_medians(steps, rounds=rounds, warmup=1 if tiny else 5, min_chunk_s=0.002 if tiny else 0.05)
    return {"case": case, **info, "first_loss": first_loss, "results": res,
            "ratio_gf_jax": res["graphforge"]["median_s"] / res["jax"]["median_s"],
            "ratio_gf_torch": res["graphforge"]["median_s"] / res["torch"]["median_s"] if "torch" in res else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when importable")
    add_common_args(parser)
    args = parser.parse_args(argv)
    import jax
    rounds = 3 if args.tiny else args.rounds
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; median of {rounds} interleaved rounds")
    rows = []
    print(f"{'case':12s} {'graphforge ms':>14s} {'hand JAX ms':>12s} {'torch ms':>9s} {'gf/jax':>7s} {'gf/torch':>9s}")
    for case in args.case.split(","):
        r = measure(case, rounds, args.tiny, False if args.no_torch else None)
        rows.append(r)
        res = r["results"]
        t = f"{res['torch']['median_s'] * 1e3:9.3f}" if "torch" in res else f"{'-':>9s}"
        rt = f"{r['ratio_gf_torch']:9.3f}" if r["ratio_gf_torch"] else f"{'-':>9s}"
        print(f"{case:12s} {res['graphforge']['median_s'] * 1e3:14.3f} {res['jax']['median_s'] * 1e3:12.3f} {t} "
              f"{r['ratio_gf_jax']:7.3f} {rt}", flush=True)
    write_results(args.json, "train_step", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
