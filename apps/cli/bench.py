"""``graphforge bench FILE.py[:ATTR] [--batch N] [--backends jax,onnxruntime,reference] [--repeat K]``:
inference latency of a model file's model on each back end.

The model is traced in eval mode, optimised with ``--passes`` (default "default") and run on random
inputs (the batch symbol set to ``--batch``, other symbols to ``--dim NAME=SIZE`` or 1) through
``gf.run``. The first call (which compiles: XLA jit, onnxruntime session) is timed apart; after
``--warmup`` more calls, ``--repeat`` calls give the median, 90th percentile and minimum. The last
column is the largest difference from the reference back end's outputs.
"""
from __future__ import annotations

import argparse
import time

from . import exitcodes

__all__ = ["add_parser", "run", "bench_backend", "format_table"]

DEFAULT_BACKENDS = "jax,onnxruntime,reference"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="inference latency of a model file on each back end", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="FILE.py[:ATTR]", help="a model file (see docs/cli.md)")
    p.add_argument("--batch", type=_positive, default=1, help="batch size of the random inputs (default 1)")
    p.add_argument("--backends", default=DEFAULT_BACKENDS, help=f"comma-separated (default {DEFAULT_BACKENDS})")
    p.add_argument("--repeat", type=_positive, default=20, help="timed calls per back end (default 20)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls after the first one (default 2)")
    p.add_argument("--passes", default="default", metavar="PIPELINE", help='pass pipeline (default "default")')
    p.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size of another symbolic input dim (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.set_defaults(command="bench")
    return p


def bench_backend(graph, arrays, backend: str, repeat: int, warmup: int = 2) -> dict:
    """Time ``gf.run(graph, arrays, backend=...)``: first call apart, then ``repeat`` timed calls."""
    import numpy as np

    import graphforge as gf

    t0 = time.perf_counter()
    outs = gf.run(graph, arrays, backend=backend)
    first = time.perf_counter() - t0
    for _ in range(max(warmup, 0)):
        gf.run(graph, arrays, backend=backend)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        gf.run(graph, arrays, backend=backend)
        times.append(time.perf_counter() - t0)
    times_ms = np.asarray(times) * 1e3
    return {"backend": backend, "first_ms": first * 1e3, "median_ms": float(np.median(times_ms)),
            "p90_ms": float(np.percentile(times_ms, 90)), "min_ms": float(times_ms.min()), "outputs": outs}


def format_table(rows: list[dict]) -> str:
    """The latency table: one row per back end (``error`` rows say why it could not run)."""
    header = ("backend", "first call ms", "median ms", "p90 ms", "min ms", "max |diff| vs reference")
    body = []
    for r in rows:
        if "error" in r:
            body.append((r["backend"], "failed: " + r["error"], "", "", "", ""))
            continue
        diff = r.get("diff")
        body.append((r["backend"], f"{r['first_ms']:.2f}", f"{r['median_ms']:.3f}", f"{r['p90_ms']:.3f}",
                     f"{r['min_ms']:.3f}", "-" if diff is None else f"{diff:.2e}"))
    # A failure message is not squeezed into the column; it runs on past the other columns.
    widths = [max([len(h)] + [len(b[i]) for b in body if not (i == 1 and b[1].startswith("failed:"))])
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for b in body:
        if b[1].startswith("failed:"):
            lines.append(f"{b[0].ljust(widths[0])}  {b[1]}")
        else:
            lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(b, widths))).rstrip())
    return "\n".join(lines)


def _parse_dims(items) -> dict[str, int]:
    from graphforge.errors import InputError

    dims = {}
    for item in items:
        name, sep, size = item.partition("=")
        if not sep or not name or not size.strip().isdigit() or int(size) < 1:
            raise InputError(f"--dim {item!r}: expected NAME=SIZE with a positive SIZE, e.g. --dim seq=128")
        dims[name.strip()] = int(size)
    return dims


def _bench(args) -> int:
    import numpy as np

    import graphforge as gf
    from graphforge.cli.compile import _check_passes, _max_abs, random_inputs
    from graphforge.cli.modelfile import batch_symbol, load_model_file, trace_model
    from graphforge.errors import GraphforgeError, InputError
    from graphforge.runtimes import BACKENDS

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise InputError(f"unknown backend(s) {', '.join(unknown) or '(none given)'}; choose from "
                         f"{', '.join(sorted(set(BACKENDS)))}")
    dims = _parse_dims(args.dim)
    _check_passes(args.passes, [])
    mf = load_model_file(args.target)
    graph = gf.optimize(trace_model(mf), args.passes)
    symbol = batch_symbol(graph.inputs)
    if symbol is not None:
        dims.setdefault(symbol, args.batch)
    elif args.batch != 1:
        raise InputError(f"--batch {args.batch}: the model's inputs have no symbolic batch dim "
                         f"({', '.join(str(v.type) for v in graph.inputs)})")
    arrays = random_inputs(graph, 1, args.seed, sizes=dims)
    shapes = ", ".join(f"{v.name}: {tuple(np.shape(a))}" for v, a in zip(graph.inputs, arrays))
    print(f"bench {mf.path} ({mf.attr}): {len(graph.nodes)} nodes after {args.passes!r}; inputs {shapes}; "
          f"{args.repeat} timed calls per back end")
    rows = []
    for backend in backends:
        try:
            rows.append(bench_backend(graph, arrays, backend, args.repeat, args.warmup))
        except GraphforgeError as exc:
            rows.append({"backend": backend, "error": str(exc).splitlines()[0]})
        except ImportError as exc:
            rows.append({"backend": backend, "error": f"not available ({exc})"})
        except Exception as exc:  # noqa: BLE001 - one broken back end must not hide the others' numbers
            rows.append({"backend": backend, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
    ref = next((r for r in rows if r["backend"] in ("reference", "numpy") and "outputs" in r), None)
    if ref is None and "error" not in (rows[0] if rows else {"error": 1}):
        try:
            ref = {"outputs": gf.run(graph, arrays, backend="reference")}
        except GraphforgeError:
            ref = None
    for r in rows:
        if "outputs" in r and ref is not None:
            r["diff"] = max((_max_abs(a, b) for a, b in zip(r["outputs"], ref["outputs"])), default=0.0)
    print(format_table(rows))
    return exitcodes.CHECK_FAILED if any("error" in r for r in rows) else exitcodes.OK


def run(args) -> int:
    from graphforge.errors import GraphforgeError

    try:
        return _bench(args)
    except GraphforgeError as exc:
        return exitcodes.report("bench", exc)
