"""onnxruntime's fused contrib kernels (issue 18): the benchmark Transformer encoder in onnxruntime,
graphforge's export with ``contrib_ops=True`` against its portable (standard-ONNX) export, against
``jax.jit`` of the hand-written JAX forward, and — when PyTorch is installed — against the issue's
anchors: torch.onnx's plain export and that export passed through onnxruntime's transformer optimizer
(``onnxruntime.transformers.optimizer.optimize_model``, model_type "bert"). All in one process, the
contenders' repeats interleaved (``benchmarks.common.interleaved_medians``).

Every ONNX contender runs in the same kind of session (default graph optimisations, ``--threads``
intra-op threads, CPU provider). Every output is checked against the portable export before
anything is timed: the contrib file must agree within 1e-4 (max abs diff), the others within 1e-3.

Targets (issue 18): contrib at batch 1 and 64 ≤ 0.75× torch.onnx's plain export and ≤ 1.0× the
optimizer's output. The decision this benchmark backs: contrib is the onnxruntime default when it is
faster than the portable export (ratio ``contrib/portable`` < 1) and within 1e-4.

    python benchmarks/bench_contrib.py [--batches 1,64] [--threads 1] [--no-torch] [--json out.json]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, interleaved_medians, write_results  # noqa: E402
from benchmarks.models import MODELS, TINY, gf_buffers, gf_params, torch_available  # noqa: E402

__all__ = ["CONTRIB_ATOL", "exports", "measure", "target_rows", "table_lines", "main"]

CONTRIB_ATOL = 1e-4  # issue 18: contrib outputs within 1e-4 of the portable export


def _session(proto_or_path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    src = proto_or_path if isinstance(proto_or_path, str) else proto_or_path.SerializeToString()
    return ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])


def _torch_exports(spec, params, example, tmp: str) -> dict:
    """torch.onnx's dynamo export (plain) and onnxruntime's transformer optimizer's output of it."""
    from onnxruntime.transformers import optimizer

    from benchmarks.bench_inference import torch_onnx

    plain = os.path.join(tmp, "torch.onnx")
    with contextlib.redirect_stdout(io.StringIO()):
        proto = torch_onnx(spec, params, example, plain)
    import onnx
    onnx.save(proto, plain)  # one self-contained file for the optimizer
    opt = optimizer.optimize_model(plain, model_type="bert", num_heads=spec.sizes["heads"],
                                   hidden_size=spec.sizes["d"], opt_level=1)
    opt_path = os.path.join(tmp, "torch-ort-opt.onnx")
    opt.save_model_to_file(opt_path)
    return {"torch-ort": proto, "torch-ort-optimizer": onnx.load(opt_path)}


def exports(spec, torch: bool, tmp: str) -> dict:
    """``{contender: ModelProto}``: graphforge portable and contrib, and torch's two when asked."""
    import graphforge as gf

    g = gf.optimize(gf.trace(spec.gf_model(), spec.spec(), seed=0, training=False))
    out = {"gf-portable": gf.to_onnx(g), "gf-contrib": gf.to_onnx(g, contrib_ops=True)}
    if torch:
        params = {**gf_params(spec), **gf_buffers(spec)}
        out.update(_torch_exports(spec, params, spec.inputs(2)[0], tmp))
    return out


def _ops(proto) -> dict:
    import collections

    return dict(collections.Counter(n.op_type for n in proto.graph.node))


def measure(batches=(1, 64), rounds: int = 15, tiny: bool = False, threads: int = 1, torch: bool | None = None) -> dict:
    import jax
    import jax.numpy as jnp

    spec = MODELS["transformer"].scaled(**TINY["transformer"]) if tiny else MODELS["transformer"]
    use_torch = torch_available() if torch is None else torch
    params = {**gf_params(spec), **gf_buffers(spec)}
    with tempfile.TemporaryDirectory(prefix="gf-bench-contrib-") as tmp:
        protos = exports(spec, use_torch, tmp)
        sessions = {name: _session(p, threads) for name, p in protos.items()}
    jparams = {k: jnp.asarray(v) for k, v in params.items()}
    hand = jax.jit(lambda p, x: spec.jax_forward(p, x, training=False, **spec.sizes))
    rows = []
    for batch in batches:
        x, _ = spec.inputs(batch, seed=1)
        xj = jnp.asarray(x)
        fns = {name: (lambda s=s: s.run(None, {s.get_inputs()[0].name: x})[0]) for name, s in sessions.items()}
        fns["jax.jit"] = lambda: hand(jparams, xj).block_until_ready()
        want = np.asarray(fns["gf-portable"]())
        diffs = {n: float(np.max(np.abs(np.asarray(f()) - want))) for n, f in fns.items()}
        if diffs["gf-contrib"] > CONTRIB_ATOL:
            raise AssertionError(f"batch {batch}: the contrib export differs from the portable one by "
                                 f"{diffs['gf-contrib']:.3g} > {CONTRIB_ATOL}")
        bad = {n: d for n, d in diffs.items() if d > 1e-3}
        if bad:
            raise AssertionError(f"batch {batch}: outputs differ from graphforge's portable export: {bad}")
        res = interleaved_medians(fns, rounds=3 if tiny else rounds, warmup=1 if tiny else 10,
                                  min_chunk_s=0.002 if tiny else 0.05)
        t = {n: r["median_s"] for n, r in res.items()}
        ratios = {"contrib/portable": t["gf-contrib"] / t["gf-portable"], "contrib/jax": t["gf-contrib"] / t["jax.jit"],
                  "portable/jax": t["gf-portable"] / t["jax.jit"]}
        if "torch-ort" in t:
            ratios["contrib/torch"] = t["gf-contrib"] / t["torch-ort"]
            ratios["contrib/optimizer"] = t["gf-contrib"] / t["torch-ort-optimizer"]
        rows.append({"batch": batch, "results": res, "max_abs_diff": diffs, "ratios": ratios})
    return {"model": "transformer", "sizes": spec.sizes, "threads": threads,
            "ops": {n: _ops(p) for n, p in protos.items()}, "rows": rows}


def target_rows(models: list, targets: dict) -> list[dict]:
    """``benchmarks/run.py``'s target rows: contrib vs torch.onnx (≤ 0.75) and vs the optimizer (≤ 1.0)
    per batch — when torch was measured — and contrib vs portable, the default's evidence (< 1.0)."""
    rows = []
    for m in models:
        for r in m["rows"]:
            b, q = r["batch"], r["ratios"]
            if "contrib/torch" in q:
                rows.append({"target": f"contrib b{b}: gf-contrib / torch.onnx (ORT)", "value": q["contrib/torch"],
                             "bound": f"<= {targets['contrib_torch_ratio_max']}",
                             "met": q["contrib/torch"] <= targets["contrib_torch_ratio_max"]})
                rows.append({"target": f"contrib b{b}: gf-contrib / ORT transformer optimizer",
                             "value": q["contrib/optimizer"], "bound": f"<= {targets['contrib_optimizer_ratio_max']}",
                             "met": q["contrib/optimizer"] <= targets["contrib_optimizer_ratio_max"]})
            rows.append({"target": f"contrib b{b}: gf-contrib / gf-portable (default if < 1)",
                         "value": q["contrib/portable"], "bound": "< 1.0", "met": q["contrib/portable"] < 1.0})
    return rows


def table_lines(models: list) -> list[str]:
    """The markdown section of ``benchmarks/run.py``'s summary table."""
    lines = []
    for m in models:
        names = list(m["rows"][0]["results"]) if m["rows"] else []
        s = m["sizes"]
        lines += ["", f"### onnxruntime contrib kernels: Transformer encoder ({s['layers']} layers, d {s['d']}, "
                      f"seq {s['seq']}; ORT {m['threads']} thread(s); median ms)", "",
                  "| batch | " + " | ".join(names) + " | contrib/portable | contrib max abs diff |",
                  "|---:|" + "---:|" * (len(names) + 2)]
        for r in m["rows"]:
            cells = " | ".join(f"{r['results'][n]['median_s'] * 1e3:.3f}" for n in names)
            lines.append(f"| {r['batch']} | {cells} | {r['ratios']['contrib/portable']:.2f} | "
                         f"{r['max_abs_diff']['gf-contrib']:.1e} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (every ONNX contender)")
    parser.add_argument("--no-torch", action="store_true")
    add_common_args(parser)
    args = parser.parse_args(argv)
    m = measure(tuple(int(b) for b in args.batches.split(",")), args.rounds, args.tiny, args.threads,
                False if args.no_torch else None)
    for name, ops in m["ops"].items():
        print(f"{name:20s} {sum(ops.values()):4d} nodes  {ops}")
    for row in m["rows"]:
        r = row["results"]
        cells = "  ".join(f"{n} {v['median_s'] * 1e3:.3f}" for n, v in r.items())
        ratios = "  ".join(f"{k} {v:.2f}" for k, v in row["ratios"].items())
        print(f"batch {row['batch']:3d} (ms)  {cells}\n          ratios   {ratios}   "
              f"contrib max|diff| {row['max_abs_diff']['gf-contrib']:.2e}", flush=True)
    write_results(args.json, "contrib", [m])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
