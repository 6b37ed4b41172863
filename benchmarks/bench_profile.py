"""``gf.profile`` on a Transformer encoder (issue 17's "profiling figures from make bench"): one
forward run at batch 32 (eval mode, the default pipeline) profiled on JAX (timed regions) and on
onnxruntime (its profiler joined through node names). The model is ``bench_ort_passes.Encoder``, the
benchmark Transformer's sizes (2 layers, d 128, 4 heads, FFN 512, seq 64) written from primitives as
user code, so its ``file:line`` locations are lines of a model file (``nn.TransformerEncoder``'s would
all point at the ``gf.trace`` call). Reports, per back end: the whole graph's time, the sum of the
timed units, the top module scopes and the top user ``file:line`` locations, with their shares.

On JAX the units are jitted and timed one by one, so fusion across units is lost and their sum may
exceed the whole jitted graph; on onnxruntime the units are its kernels, so the sum is the run minus
the executor's overhead between kernels.

    python benchmarks/bench_profile.py [--batch 32] [--repeat 10] [--tiny] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, write_results  # noqa: E402

__all__ = ["profile_rows", "table_lines", "main"]


def profile_rows(batch: int = 32, repeat: int = 10, tiny: bool = False, top: int = 5) -> list[dict]:
    """One row per back end: ``{"backend", "total_ms", "units_ms", "scopes": [[scope, ms, share]],
    "locations": [[file:line, ms, share]]}``."""
    import graphforge as gf

    import numpy as np

    from benchmarks.bench_ort_passes import Encoder

    sizes = dict(layers=1, d=16, heads=2, ff=32) if tiny else dict(layers=2, d=128, heads=4, ff=512)
    seq = 8 if tiny else 64
    graph = gf.optimize(gf.trace(Encoder(**sizes), gf.TensorSpec(("batch", seq, sizes["d"])), seed=0, training=False))
    x = np.random.default_rng(1).standard_normal((batch, seq, sizes["d"])).astype(np.float32)
    rows = []
    for backend in ("jax", "onnxruntime"):
        rep = gf.profile(graph, x, backend=backend, repeat=2 if tiny else repeat, warmup=1 if tiny else 2)
        units = rep.measured_us or 1.0
        rows.append({"backend": backend, "batch": batch, "total_ms": rep.total_ms, "units_ms": units / 1e3,
                     "scopes": [[k, t / 1e3, t / units] for k, t, _ in rep.by_scope()[:top]],
                     "locations": [[k, t / 1e3, t / units] for k, t, _ in rep.by_location()[:top]]})
    return rows


def table_lines(rows: list) -> list[str]:
    """The markdown section of ``benchmarks/run.py``'s summary table."""
    lines = ["", "### gf.profile: Transformer encoder forward (mean of the profiled runs; ms)", "",
             "| back end | whole graph | timed units | top scopes | top file:line (share of units) |",
             "|---|---:|---:|---|---|"]
    for r in rows:
        scopes = ", ".join(f"{k} {s * 100:.0f} %" for k, _, s in r["scopes"][:2])
        locs = ", ".join(f"{k} {s * 100:.0f} %" for k, _, s in r["locations"][:3])
        lines.append(f"| {r['backend']} (batch {r['batch']}) | {r['total_ms']:.3f} | {r['units_ms']:.3f} | {scopes} | "
                     f"{locs} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=10, help="profiled runs per back end")
    add_common_args(parser)
    args = parser.parse_args(argv)
    rows = profile_rows(4 if args.tiny else args.batch, args.repeat, args.tiny)
    for r in rows:
        print(f"{r['backend']:12s} whole graph {r['total_ms']:8.3f} ms   timed units {r['units_ms']:8.3f} ms")
        for k, ms, share in r["scopes"]:
            print(f"    scope {k:40s} {ms:8.3f} ms {share * 100:5.1f} %")
        for k, ms, share in r["locations"][:3]:
            print(f"    line  {k:40s} {ms:8.3f} ms {share * 100:5.1f} %")
    write_results(args.json, "profile", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
