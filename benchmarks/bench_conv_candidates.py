"""The convolution lowering candidates of issue 21, measured the way docs/benchmarks.md reports
them: a whole train step (``bench_train_step``'s graphforge side) per candidate rule, hand-written
JAX and (when importable) PyTorch eager in the same process, interleaved round by round; best and
median wall-clock ms and process CPU ms per step.

Candidates (``--variants``): ``xla`` (every conv on XLA's convolution), ``auto`` (the shape rule in
``runtimes/jax/conv_impl.py``: banded matmuls for a stem and its weight gradient), ``banded`` /
``im2col`` / ``nhwc`` (every conv that way), ``im2col_wgrad`` (im2col
for the weight-gradient convs only: fewer output than kernel positions), ``shift`` (shift-and-add
for forward convs with a contraction of at most 32 terms, LeNet's conv1; the rule elsewhere).

    python benchmarks/bench_conv_candidates.py [--case lenet] [--variants xla,auto,shift] [--rounds 7]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, machine_info, write_results  # noqa: E402

__all__ = ["VARIANTS", "measure", "main"]

VARIANTS = ("xla", "auto", "banded", "im2col", "im2col_wgrad", "nhwc", "shift")
# im2col_wgrad: one slice per output position, so at most this many output positions
IM2COL_MAX_SLICES = 64


def _rule(variant: str, auto):
    def choose(x_shape, w_shape, strides, padding, dilation, groups, platform=None):
        if variant in ("xla", "banded", "im2col", "nhwc"):
            return variant
        if variant == "shift" and groups == 1 and x_shape[1] * math.prod(w_shape[2:]) <= 32:
            return "shift"
        if variant == "im2col_wgrad" and groups == 1:   # fewer output than kernel positions
            out = [(x_shape[2 + i] + lo + hi - dilation[i] * (w_shape[2 + i] - 1) - 1) // strides[i] + 1
                   for i, (lo, hi) in enumerate(padding)]
            if math.prod(out) < math.prod(w_shape[2:]) and math.prod(out) <= IM2COL_MAX_SLICES:
                return "im2col"
        return auto(x_shape, w_shape, strides, padding, dilation, groups)
    return choose


def measure(case: str, variants, rounds: int = 7, tiny: bool = False, torch: bool | None = None) -> dict:
    from benchmarks import bench_train_step as b
    from benchmarks.models import MODELS, TINY, gf_params, torch_available
    from graphforge.runtimes.jax import conv_impl

    model, batch = b.CASES[case]
    spec = MODELS[model].scaled(**TINY[model]) if tiny else MODELS[model]
    batch = b.TINY_BATCH if tiny else batch
    params = gf_params(spec)
    x, y = spec.inputs(batch)
    auto, steps, first = conv_impl.choose, {}, {}
    try:
        for v in variants:   # the rule is read when the step is lowered (its first call)
            conv_impl.choose = _rule(v, auto)
            fn = b._gf_step(spec, params, x, y)[0]
            first["gf-" + v] = float(fn())
            steps["gf-" + v] = fn
    finally:
        conv_impl.choose = auto
    steps["jax"] = b._jax_step(spec, params, x, y)[0]
    if torch if torch is not None else torch_available():
        steps["torch"] = b._torch_step(spec, params, x, y)[0]
    for f in steps.values():
        f(), f()
    wall: dict = {k: [] for k in steps}
    cpu: dict = {k: [] for k in steps}
    for _ in range(rounds):
        for k, f in steps.items():   # interleaved: a burst of load hits every contender alike
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(3):
                f()
            wall[k].append((time.perf_counter() - w0) / 3 * 1e3)
            cpu[k].append((time.process_time() - c0) / 3 * 1e3)
    return {"case": case, "batch": batch, "machine": machine_info(), "first_loss": first,
            "ms": {k: {"best": min(wall[k]), "median": statistics.median(wall[k]), "cpu_best": min(cpu[k]),
                       "cpu_median": statistics.median(cpu[k])} for k in steps}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="lenet")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--no-torch", action="store_true")
    add_common_args(ap)
    args = ap.parse_args(argv)
    rounds = 2 if args.tiny else args.rounds
    rows = [measure(c, args.variants.split(","), rounds, args.tiny, False if args.no_torch else None)
            for c in args.case.split(",")]
    for r in rows:
        print(f"{r['case']} batch {r['batch']}, load {r['machine'].get('loadavg')}")
        print(f"  {'':16s} {'best ms':>8s} {'median':>8s} {'CPU best':>9s} {'CPU med':>8s}")
        for k, m in r["ms"].items():
            print(f"  {k:16s} {m['best']:8.2f} {m['median']:8.2f} {m['cpu_best']:9.2f} {m['cpu_median']:8.2f}")
    write_results(args.json, "conv_candidates", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
