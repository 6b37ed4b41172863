"""Mixed precision and rematerialisation on the benchmark Transformer: step time and peak memory.

Model: ``benchmarks.models`` ``transformer`` (2-layer post-norm encoder, d=128, 4 heads, FFN 512,
seq 64), loss mean(out²), adam(1e-3), batch 32 (``--batch``). Contenders, each a ``gf.Trainer``:

* ``float32``: the baseline; ``bf16-mixed``, ``fp16-mixed``: ``precision=...`` (float32 master
  weights; fp16 with dynamic loss scaling);
* ``remat-nothing``, ``remat-dots``: ``remat={"layers.i.<attn|ffn|norm1|norm2>": policy}`` (each
  encoder sub-layer recomputed in the backward pass, one at a time).

For each: the median train-step time (interleaved rounds, after compilation), the IR estimate of
the step's peak memory (``gf.memory_report(trainer, batch=B)``) and XLA's (``arguments + outputs -
aliased + temporaries`` of ``trainer.compiled_step(...).memory_analysis()``), and ratios against
``float32``. Honest notes: XLA's CPU back end has no fast bf16/fp16 matmul (it converts), so half
types are usually *slower* on CPU. With XLA:CPU's default passes the rematerialised computation is
merged back into the forward pass (``jax.checkpoint`` too: its dots drop from 55 to 47 when XLA:CPU
compiles an 8-block MLP); the Trainer therefore compiles a remat step with
``runtimes/jax/xla_options.py: REMAT_CPU_OPTIONS`` (barriers kept, memory-minimising scheduler), under
which XLA's reported peak drops too (docs/benchmarks.md, "XLA:CPU compiler options").

    python benchmarks/bench_precision_remat.py [--batch 32] [--rounds 15] [--tiny] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, write_results  # noqa: E402

__all__ = ["CONTENDERS", "measure", "main"]

CONTENDERS = ("float32", "bf16-mixed", "fp16-mixed", "remat-nothing", "remat-dots")


def _trainer(name: str, layers: int, d: int, ffn: int, seq: int):
    import optax

    import graphforge as gf
    from graphforge import nn

    model = nn.TransformerEncoder(num_layers=layers, d_model=d, nhead=4, dim_feedforward=ffn, dropout=0.0)
    kw = {}
    if name.endswith("-mixed"):
        kw["precision"] = name
    if name.startswith("remat-"):
        # each sub-layer its own region: one is recomputed at a time in the backward pass
        kw["remat"] = {f"layers.{i}.{part}": name.split("-", 1)[1] for i in range(layers)
                       for part in ("attn", "ffn", "norm1", "norm2")}
    return gf.Trainer(model, lambda out: gf.mean(out * out), optax.adam(1e-3),
                      inputs=gf.TensorSpec(("batch", seq, d)), targets=[], seed=0, progress=False, **kw)


def _xla_peak(compiled) -> int:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)


def measure(batch: int = 32, rounds: int = 15, tiny: bool = False) -> list[dict]:
    import graphforge as gf

    layers, d, ffn, seq = (1, 32, 64, 8) if tiny else (2, 128, 512, 64)
    x = np.random.default_rng(0).standard_normal((batch, seq, d)).astype(np.float32)
    trainers = {n: _trainer(n, layers, d, ffn, seq) for n in CONTENDERS}
    rows = {}
    for n, t in trainers.items():
        t.train_step(x, [])
        float(t.train_step(x, [])["loss"])  # compiled and warm
        rows[n] = {"contender": n, "est_peak_bytes": gf.memory_report(t, batch=batch).peak_bytes,
                   "xla_peak_bytes": _xla_peak(t.compiled_step(x, [])), "times": []}
    for _ in range(rounds):
        for n, t in trainers.items():
            t0 = time.perf_counter()
            float(t.train_step(x, [])["loss"])
            rows[n]["times"].append(time.perf_counter() - t0)
    base = rows["float32"]
    out = []
    for n, r in rows.items():
        ms = 1e3 * statistics.median(r.pop("times"))
        r["step_ms"] = ms
        out.append(r)
    b_ms = base["step_ms"]
    for r in out:
        r["time_ratio"] = r["step_ms"] / b_ms
        r["est_peak_ratio"] = r["est_peak_bytes"] / base["est_peak_bytes"]
        r["xla_peak_ratio"] = r["xla_peak_bytes"] / base["xla_peak_bytes"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(p)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args(argv)
    rows = measure(args.batch, 2 if args.tiny else args.rounds, args.tiny)
    print(f"{'contender':15s} {'step ms':>9s} {'x f32':>6s} {'est peak MiB':>13s} {'x f32':>6s} "
          f"{'XLA peak MiB':>13s} {'x f32':>6s}")
    for r in rows:
        print(f"{r['contender']:15s} {r['step_ms']:9.2f} {r['time_ratio']:6.2f} {r['est_peak_bytes'] / 2**20:13.2f} "
              f"{r['est_peak_ratio']:6.2f} {r['xla_peak_bytes'] / 2**20:13.2f} {r['xla_peak_ratio']:6.2f}")
    write_results(args.json, "precision_remat", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
