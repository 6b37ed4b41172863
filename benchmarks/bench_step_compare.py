"""graphforge's compiled train step beside the hand-written JAX + optax step of
``bench_train_step.py``: what XLA compiled (bytes accessed, FLOPs, fusions, dots, transposes,
copies, donated buffers — from ``Compiled.cost_analysis()`` and the optimised HLO text, so
deterministic) and, unless ``--no-timing``, their step-time ratio from step-level ABBA alternation.

Why step-level alternation: ``bench_train_step`` times 50 ms chunks in rotating order, so load that
changes between chunks lands on one side; on a shared 2-core VM at load 8–10 that moved the MLP-128
ratio by ±15 % between runs. Timing single steps in the order A B B A A B …, so each side follows
itself and the other equally often, and taking the median of the per-pair ratios, repeated runs
agreed within about ±1 % at the same load (docs/benchmarks.md, "MLP-128 step: the compiled
difference").

    python benchmarks/bench_step_compare.py [--case mlp128,mlp1024] [--pairs 4000] [--no-timing]
        [--dump-hlo DIR] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections import Counter

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_train_step import CASES, TINY_BATCH, _gf_step, _jax_step  # noqa: E402
from benchmarks.common import add_common_args, write_results  # noqa: E402
from benchmarks.models import MODELS, TINY, gf_params  # noqa: E402

__all__ = ["hlo_profile", "compiled_steps", "alternate", "main"]


def hlo_profile(compiled) -> dict:
    """What one compiled XLA program does per call: cost analysis and op counts of its optimised HLO
    (``fusions``: top-level fusions of the entry computation, i.e. kernels launched per step)."""
    text = compiled.as_text()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    entry = text[text.index("\nENTRY"):]
    top = Counter(re.findall(r"= \S+ ([a-z\-]+)\(", entry))
    header = text.split("\n", 1)[0]
    return {"bytes_accessed": float(cost.get("bytes accessed", 0.0)), "flops": float(cost.get("flops", 0.0)),
            "fusions": top.get("fusion", 0), "dots": len(re.findall(r" dot\(", text)),
            "convolutions": len(re.findall(r" convolution\(", text)),
            "transposes": len(re.findall(r" transpose\(", text)), "copies": len(re.findall(r" copy\(", text)),
            "donated": header.count("may-alias") + header.count("must-alias")}


def _setup(case: str, tiny: bool):
    model, batch = CASES[case]
    spec = MODELS[model].scaled(**TINY[model]) if tiny else MODELS[model]
    batch = TINY_BATCH if tiny else batch
    params = gf_params(spec)
    x, y = spec.inputs(batch)
    gf_one, trainer = _gf_step(spec, params, x, y)
    jax_one, (step, box, xd, yd) = _jax_step(spec, params, x, y)
    return x, y, gf_one, trainer, jax_one, step, box, xd, yd


def compiled_steps(case: str, tiny: bool = False):
    """``(graphforge Compiled, hand-JAX Compiled, steps)`` for one case: the programs each side's
    step runs, and ``{"graphforge": fn, "jax": fn}`` (one synchronous step each)."""
    x, y, gf_one, trainer, jax_one, step, box, xd, yd = _setup(case, tiny)
    ours = trainer.compiled_step(x, y if y is not None else [])
    hand = step.lower(*box, xd, yd).compile()
    return ours, hand, {"graphforge": gf_one, "jax": jax_one}


def alternate(steps: dict, pairs: int, warmup: int = 30) -> dict:
    """Two synchronous step functions timed one step at a time in ABBA order; per side the median
    and 10th-percentile step time, and ``ratio``: the median over pairs of first/second."""
    (a, fa), (b, fb) = steps.items()
    for _ in range(warmup):
        fa(), fb()
    clock = time.perf_counter
    ta, tb = [], []
    for i in range(pairs):
        for name in ((a, b) if i % 2 == 0 else (b, a)):
            t0 = clock()
            (fa if name == a else fb)()
            (ta if name == a else tb).append(clock() - t0)
    sa, sb = sorted(ta), sorted(tb)
    p10 = max(0, len(sa) // 10 - 1)
    return {a: {"median_s": statistics.median(ta), "p10_s": sa[p10]},
            b: {"median_s": statistics.median(tb), "p10_s": sb[p10]},
            "ratio": statistics.median([x / y for x, y in zip(ta, tb)]),
            "ratio_of_medians": statistics.median(ta) / statistics.median(tb), "pairs": pairs,
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="mlp128,mlp1024", help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--pairs", type=int, default=4000, help="ABBA step pairs per case")
    parser.add_argument("--no-timing", action="store_true", help="compare the compiled programs only")
    parser.add_argument("--dump-hlo", metavar="DIR", help="write both optimised HLO texts there")
    add_common_args(parser)
    args = parser.parse_args(argv)
    pairs = 20 if args.tiny else args.pairs
    rows = []
    keys = ("bytes_accessed", "flops", "fusions", "dots", "transposes", "copies", "donated")
    print(f"{'case':12s} {'side':10s} {'MB':>9s} {'MFLOP':>9s} {'fusions':>7s} {'dots':>5s} {'transp':>6s} "
          f"{'copies':>6s} {'donated':>7s}")
    for case in args.case.split(","):
        ours, hand, steps = compiled_steps(case, args.tiny)
        row = {"case": case, "graphforge": hlo_profile(ours), "jax": hlo_profile(hand)}
        if args.dump_hlo:
            os.makedirs(args.dump_hlo, exist_ok=True)
            for side, c in (("graphforge", ours), ("jax", hand)):
                with open(os.path.join(args.dump_hlo, f"{case}_{side}.hlo.txt"), "w") as f:
                    f.write(c.as_text())
        for side in ("graphforge", "jax"):
            p = row[side]
            print(f"{case:12s} {side:10s} {p['bytes_accessed'] / 1e6:9.3f} {p['flops'] / 1e6:9.2f} "
                  + " ".join(f"{p[k]:>{w}d}" for k, w in zip(keys[2:], (7, 5, 6, 6, 7))))
        if not args.no_timing:
            row["timing"] = alternate(steps, pairs, warmup=2 if args.tiny else 30)
            t = row["timing"]
            print(f"{case:12s} step ms: graphforge {t['graphforge']['median_s'] * 1e3:.4f}, hand JAX "
                  f"{t['jax']['median_s'] * 1e3:.4f}; gf/jax {t['ratio']:.3f} (median of {pairs} ABBA pair "
                  f"ratios; ratio of medians {t['ratio_of_medians']:.3f}; load {t['loadavg'][0]:.2f})", flush=True)
        rows.append(row)
    write_results(args.json, "step_compare", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
