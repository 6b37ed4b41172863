"""Compile-time scaling: trace + the default pass pipeline (+ ONNX export when the back end exists)
on generated graphs of about 1k, 10k and 100k nodes (and 1M with ``--million``); prints the time per node.

Each generated block is what a hand-written model produces: ``x @ W.T + b`` (→ linear), a GELU in
its erf spelling (→ gelu), an identity ``* 1.0`` (simplify), a recomputed subexpression (cse),
constant arithmetic (fold) and an unused value (dce).

The whole pipeline must stay near-linear: the time per node should be flat from 1k to 100k nodes,
and 100k nodes must go through trace + passes + export in under 10 s (``TARGET_100K_S``), a million
in under 60 s (``TARGET_1M_S``, issue 21; about a minute, so opt-in here: ``--million``).

    python benchmarks/bench_compile_scaling.py [--sizes 1000,10000,100000] [--million] [--json out.json]
"""
from __future__ import annotations

import argparse
import gc
import importlib
import math
import os
import sys
import time

import graphforge as gf
from graphforge import nn

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import write_results  # noqa: E402

__all__ = ["Block", "Stack", "bench", "main", "TARGET_100K_S", "TARGET_1M_S", "MILLION"]

TARGET_100K_S = 10.0
TARGET_1M_S = 60.0
MILLION = 1_000_000


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter((width, width))
        self.bias = nn.Parameter((width,))

    def forward(self, x):
        h = x @ self.weight.T + self.bias
        h = 0.5 * h * (1 + gf.erf(h / math.sqrt(2)))
        scale = gf.constant(2.0) * gf.constant(0.25)          # folds to 0.5
        a = gf.tanh(h) * scale
        b = gf.tanh(h) * scale                                  # the same again: CSE
        _unused = gf.exp(h)                                     # dead: DCE
        return (a + b) * 1.0 + x                                # * 1.0: simplify


class Stack(nn.Module):
    def __init__(self, blocks: int, width: int):
        super().__init__()
        self.blocks = nn.ModuleList([Block(width) for _ in range(blocks)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


NODES_PER_BLOCK = 24


class _CollectorClock:
    """CPU seconds Python's cyclic collector spends while it is installed (``gc.callbacks``)."""

    def __init__(self):
        self.seconds, self._start = 0.0, None

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.process_time()
        elif self._start is not None:
            self.seconds += time.process_time() - self._start
            self._start = None

    def __enter__(self):
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self)
        return False


def bench(target_nodes: int, width: int = 8) -> dict:
    blocks = max(1, target_nodes // NODES_PER_BLOCK)
    model = Stack(blocks, width)
    with _CollectorClock() as collector:
        row = _compile(model, width)
    row["gc_s"] = collector.seconds  # part of cpu_s: the collector's share (issue 21)
    return row


def _compile(model, width: int) -> dict:
    c0 = time.process_time()
    t0 = time.perf_counter()
    g = gf.trace(model, gf.TensorSpec(("batch", width), "float32"))
    t1 = time.perf_counter()
    opt = gf.optimize(g)
    t2 = time.perf_counter()
    row = {"nodes": len(g.nodes), "nodes_after": len(opt.nodes), "trace_s": t1 - t0, "optimize_s": t2 - t1}
    try:
        onnx_backend = importlib.import_module("graphforge.runtimes.onnx")
        to_onnx = getattr(onnx_backend, "to_onnx", None)
    except ImportError:
        to_onnx = None
    if to_onnx is not None:
        t3 = time.perf_counter()
        proto = to_onnx(opt)
        row["export_s"] = time.perf_counter() - t3
        row["onnx_nodes"] = len(proto.graph.node)
    # CPU seconds of this process beside the wall-clock figures: on a loaded shared box the wall
    # clock also counts the time other processes held the cores
    row["cpu_s"] = time.process_time() - c0
    row["total_s"] = row["trace_s"] + row["optimize_s"] + row.get("export_s", 0.0)
    row["us_per_node"] = row["total_s"] / row["nodes"] * 1e6
    row["load_avg_1m"] = os.getloadavg()[0]  # a shared box: say how busy it was
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--tiny", action="store_true", help="sizes 100,300 (checks the benchmark runs)")
    parser.add_argument("--million", action="store_true",
                        help=f"also a ~1M-node graph (target < {TARGET_1M_S:.0f} s; about 4 GB of memory)")
    args = parser.parse_args(argv)
    sizes = "100,300" if args.tiny else args.sizes
    if args.million and not args.tiny:
        sizes += f",{MILLION}"
    rows = []
    bench(100)   # warm-up: one-time costs (imports, onnx checker set-up) are not per-node costs
    print(f"{'nodes':>8} {'after':>7} {'trace s':>8} {'passes s':>9} {'export s':>9} {'pass us/node':>13} "
          f"{'total us/node':>14} {'cpu s':>8} {'gc s':>6} {'load':>5}")
    for size in [int(s) for s in sizes.split(",")]:
        r = bench(size)
        rows.append(r)
        total = r["total_s"]
        export = f"{r['export_s']:9.3f}" if "export_s" in r else f"{'n/a':>9}"
        print(f"{r['nodes']:8d} {r['nodes_after']:7d} {r['trace_s']:8.3f} {r['optimize_s']:9.3f} {export} "
              f"{r['optimize_s'] / r['nodes'] * 1e6:13.1f} {total / r['nodes'] * 1e6:14.1f} {r['cpu_s']:8.2f} "
              f"{r.get('gc_s', 0.0):6.2f} {r['load_avg_1m']:5.1f}", flush=True)
    write_results(args.json, "scaling", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
