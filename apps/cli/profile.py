"""``graphforge profile FILE.py[:ATTR]``: where a model's forward time goes, mapped to its code.

The model file follows the CLI convention (docs/cli.md); it is traced in eval mode, run on random
inputs (the file's ``sample_inputs`` when it has them, else ``--batch`` rows) with ``gf.profile``
on ``--backend jax`` (timed regions) or ``onnxruntime`` (its profiler), and the time per module
scope and per ``file:line`` is printed as a sorted table. ``-o DIR`` also writes ``DIR/trace.json``
(Chrome/Perfetto trace) and ``DIR/profile.png`` (bar chart of the slowest scopes).
"""
from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("profile", help="time a model's forward pass per module scope and source line",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="FILE.py[:ATTR]", help="a model file (see docs/cli.md)")
    p.add_argument("--backend", choices=("jax", "onnxruntime"), default="jax", help="back end to profile (default jax)")
    p.add_argument("--batch", type=int, default=32, help="rows of the random inputs (default 32)")
    p.add_argument("--repeat", type=int, default=10, help="timed runs (default 10)")
    p.add_argument("--top", type=int, default=20, help="rows of each table (default 20)")
    p.add_argument("-o", "--output-dir", default=None, metavar="DIR", help="write trace.json and profile.png here")
    p.set_defaults(command="profile")
    return p


def _profile(args, out) -> int:
    import graphforge as gf
    from graphforge.cli.compile import random_inputs
    from graphforge.cli.modelfile import load_model_file, trace_model
    from graphforge.errors import ConfigError

    if args.batch < 1 or args.repeat < 1:
        raise ConfigError("graphforge profile: --batch and --repeat must be positive")
    mf = load_model_file(args.target)
    graph = trace_model(mf, None)
    sample = getattr(mf, "sample_inputs", None)
    arrays = sample if sample is not None else random_inputs(graph, size=args.batch)
    report = gf.profile(graph, arrays, backend=args.backend, repeat=args.repeat)
    print(report.table("scope", args.top), file=out)
    print(file=out)
    print(report.table("location", args.top), file=out)
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        trace = report.chrome_trace(os.path.join(args.output_dir, "trace.json"))
        png = report.plot(os.path.join(args.output_dir, "profile.png"))
        print(f"\nwrote {trace} (open in ui.perfetto.dev) and {png}", file=out)
    return 0


def run(args) -> int:
    from .compile import report_errors

    return report_errors("profile", args.output_dir, lambda: _profile(args, sys.stdout))
