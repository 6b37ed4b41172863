"""Export time: graphforge's ``graphforge compile`` path (trace → default pipeline → ``gf.save_onnx``
to a file) vs ``torch.onnx.export(..., dynamo=True)`` of the same model to a file. Target:
graphforge ≥ 10× faster.

Each repeat starts from a freshly built model object on both sides (no caches carried over inside
graphforge; torch keeps its process-wide caches, which only helps it). The first export of each
side is reported separately as ``cold_s`` (torch's includes its one-time exporter set-up); the
compared figure is the median of the interleaved warm repeats.

    python benchmarks/bench_export.py [--model mlp,lenet,transformer] [--rounds 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, summary, write_results  # noqa: E402
from benchmarks.models import MODELS, TINY, gf_buffers, gf_params, torch_available  # noqa: E402

__all__ = ["gf_export", "torch_export", "measure", "main"]


def gf_export(spec, path: str) -> None:
    """What ``graphforge compile`` does with a model: trace in eval mode, optimise, write ONNX."""
    import graphforge as gf

    g = gf.trace(spec.gf_model(), spec.spec(), seed=0, training=False)
    gf.save_onnx(gf.optimize(g), path)


def torch_export(spec, params, example, path: str) -> None:
    from benchmarks.bench_inference import _quiet_torch_onnx

    _quiet_torch_onnx(spec, params, example, path)


def measure(model: str, rounds: int = 5, tiny: bool = False, torch: bool | None = None) -> dict:
    spec = MODELS[model].scaled(**TINY[model]) if tiny else MODELS[model]
    params = {**gf_params(spec), **gf_buffers(spec)}
    example = spec.inputs(8)[0]
    sides = {"graphforge": lambda p: gf_export(spec, p)}
    if torch if torch is not None else torch_available():
        sides["torch"] = lambda p: torch_export(spec, params, example, p)
    cold, samples, sizes = {}, {n: [] for n in sides}, {}
    with tempfile.TemporaryDirectory(prefix="gf-bench-export-") as tmp:
        for name, fn in sides.items():
            path = os.path.join(tmp, f"{name}-cold.onnx")
            t0 = time.perf_counter()
            fn(path)
            cold[name] = time.perf_counter() - t0
            sizes[name] = os.path.getsize(path)
        for r in range(rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                path = os.path.join(tmp, f"{name}-{r}.onnx")
                t0 = time.perf_counter()
                sides[name](path)
                samples[name].append(time.perf_counter() - t0)
                os.unlink(path)
    res = {n: summary(s) | {"cold_s": cold[n], "file_bytes": sizes[n]} for n, s in samples.items()}
    speedup = res["torch"]["median_s"] / res["graphforge"]["median_s"] if "torch" in res else None
    return {"model": model, "sizes": spec.sizes, "results": res, "speedup_vs_torch": speedup}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=",".join(MODELS))
    parser.add_argument("--no-torch", action="store_true")
    add_common_args(parser)
    parser.set_defaults(rounds=5)
    args = parser.parse_args(argv)
    rounds = 1 if args.tiny else args.rounds
    out = []
    print(f"{'model':12s} {'graphforge s':>13s} {'torch s':>9s} {'gf cold s':>10s} {'torch cold s':>13s} {'speed-up':>9s}")
    for model in args.model.split(","):
        m = measure(model, rounds, args.tiny, False if args.no_torch else None)
        out.append(m)
        r = m["results"]
        t = (f"{r['torch']['median_s']:9.3f}", f"{r['torch']['cold_s']:13.3f}", f"{m['speedup_vs_torch']:8.1f}x") \
            if "torch" in r else (f"{'-':>9s}", f"{'-':>13s}", f"{'-':>9s}")
        print(f"{model:12s} {r['graphforge']['median_s']:13.4f} {t[0]} {r['graphforge']['cold_s']:10.4f} {t[1]} {t[2]}",
              flush=True)
    write_results(args.json, "export", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
