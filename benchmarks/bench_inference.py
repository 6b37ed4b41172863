"""Inference latency at batch 1 and 64: graphforge's ONNX export (trace → default pipeline →
``gf.to_onnx``) in onnxruntime vs PyTorch's ``torch.onnx.export(..., dynamo=True)`` of the same
model with the same weights in onnxruntime vs ``jax.jit`` (the hand-written JAX forward, and
graphforge's own JAX lowering). Also the ONNX node count of each export. Targets: graphforge ONNX
latency / torch.onnx latency ≤ 1.0 with fewer or equal nodes.

Both ONNX files keep the batch dim symbolic (graphforge's ``batch`` dim_param; torch exported with a
dynamic ``batch`` Dim), and both run in identical onnxruntime sessions (default graph
optimisations, ``--threads`` intra-op threads, CPU provider). Every contender's output is checked
against the hand-written JAX one before anything is timed.

    python benchmarks/bench_inference.py [--model mlp,lenet,transformer] [--batches 1,64] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, interleaved_medians, ort_settle, write_results  # noqa: E402
from benchmarks.models import MODELS, TINY, gf_buffers, gf_params, torch_available  # noqa: E402

__all__ = ["ort_session", "gf_onnx", "torch_onnx", "measure", "main"]


def ort_session(proto, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def gf_onnx(spec, opset: int | None = None):
    """graphforge's export of ``spec``: (optimised graph, ModelProto); ``opset`` None = the exporter's default."""
    import graphforge as gf

    g = gf.optimize(gf.trace(spec.gf_model(), spec.spec(), seed=0, training=False))  # inference: eval mode
    return g, gf.to_onnx(g, opset=opset)


def torch_onnx(spec, params, example, path=None):
    """torch.onnx's dynamo export of the same model with ``params`` loaded: a ModelProto (written to
    ``path`` too when given), the batch dim dynamic."""
    import torch

    model = spec.torch_model()
    # params and buffers (BatchNorm running statistics); torch's num_batches_tracked has no twin
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()},
                                                strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(model, (torch.from_numpy(example),), path, dynamo=True,
                                dynamic_shapes=({0: batch},), verbose=False)
    return program.model_proto


def _quiet_torch_onnx(*args, **kwargs):
    """torch.onnx prints progress lines to stdout; keep the benchmark's table readable."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return torch_onnx(*args, **kwargs)


def measure(model: str, batches=(1, 64), rounds: int = 15, tiny: bool = False, threads: int = 1,
            torch: bool | None = None, opset: int | None = None) -> dict:
    import jax
    import jax.numpy as jnp

    from graphforge.runtime import bind_inputs
    from graphforge.runtimes.jax import compile_graph, x64

    spec = MODELS[model].scaled(**TINY[model]) if tiny else MODELS[model]
    params = {**gf_params(spec), **gf_buffers(spec)}
    use_torch = torch if torch is not None else torch_available()
    graph, proto = gf_onnx(spec, opset)
    sessions = {"graphforge-ort": ort_session(proto, threads)}
    nodes = {"graphforge": len(proto.graph.node)}
    if use_torch:
        tproto = _quiet_torch_onnx(spec, params, spec.inputs(max(batches) if max(batches) > 1 else 2)[0])
        sessions["torch-ort"] = ort_session(tproto, threads)
        nodes["torch"] = len(tproto.graph.node)
        nodes["torch_functions"] = len(tproto.functions)
    jparams = {k: jnp.asarray(v) for k, v in params.items()}
    hand = jax.jit(lambda p, x: spec.jax_forward(p, x, training=False, **spec.sizes))
    rows = []
    for batch in batches:
        x, _ = spec.inputs(batch, seed=1)
        xj = jnp.asarray(x)
        with x64():
            _, env = bind_inputs(graph, [x])
            # gf.run's own path: the jitted lowering with graphforge's per-graph XLA options
            gfj = compile_graph(graph, [x], env, precision="default")
            gparams = {n: jnp.asarray(graph.params[n]) for n in graph.param_values}
            xg = jnp.asarray(x)
        fns = {}
        for name, sess in sessions.items():
            feed = {sess.get_inputs()[0].name: x}
            fns[name] = (lambda s=sess, f=feed: s.run(None, f)[0])
        fns["jax"] = lambda: hand(jparams, xj).block_until_ready()

        def gf_jax():
            with x64():
                return gfj(gparams, (xg,))[0].block_until_ready()
        fns["graphforge-jax"] = gf_jax
        want = np.asarray(fns["jax"]())
        diffs = {n: float(np.max(np.abs(np.asarray(f()) - want))) for n, f in fns.items()}
        scale = float(np.max(np.abs(want))) or 1.0
        bad = {n: d for n, d in diffs.items() if d > 1e-3 * scale + 1e-4}
        if bad:
            raise AssertionError(f"{model} batch {batch}: outputs differ from hand-written JAX: {bad}")
        res = interleaved_medians(fns, rounds=3 if tiny else rounds, warmup=1 if tiny else 10,
                                  min_chunk_s=0.002 if tiny else 0.05,
                                  settle_s=ort_settle(tiny, threads))
        ratio = res["graphforge-ort"]["median_s"] / res["torch-ort"]["median_s"] if "torch-ort" in res else None
        rows.append({"model": model, "batch": batch, "results": res, "max_abs_diff": diffs, "ratio_gf_torch": ratio})
    opsets = {"graphforge": proto.opset_import[0].version}
    if use_torch:
        opsets["torch"] = tproto.opset_import[0].version
    return {"model": model, "sizes": spec.sizes, "nodes": nodes, "opsets": opsets, "threads": threads, "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (both exports)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--opset", type=int, default=None, help="graphforge's export opset (default: the exporter's)")
    add_common_args(parser)
    args = parser.parse_args(argv)
    batches = tuple(int(b) for b in args.batches.split(","))
    out = []
    print(f"{'model':12s} {'batch':>5s} {'gf-ORT ms':>10s} {'torch-ORT ms':>13s} {'jax ms':>8s} {'gf-jax ms':>10s} "
          f"{'gf/torch':>9s} {'nodes gf/torch':>15s}")
    for model in args.model.split(","):
        m = measure(model, batches, args.rounds, args.tiny, args.threads, False if args.no_torch else None,
                    args.opset)
        out.append(m)
        for row in m["rows"]:
            r = row["results"]
            t = f"{r['torch-ort']['median_s'] * 1e3:13.3f}" if "torch-ort" in r else f"{'-':>13s}"
            ratio = f"{row['ratio_gf_torch']:9.3f}" if row["ratio_gf_torch"] else f"{'-':>9s}"
            nodes = f"{m['nodes']['graphforge']}/{m['nodes'].get('torch', '-')}"
            print(f"{model:12s} {row['batch']:5d} {r['graphforge-ort']['median_s'] * 1e3:10.3f} {t} "
                  f"{r['jax']['median_s'] * 1e3:8.3f} {r['graphforge-jax']['median_s'] * 1e3:10.3f} {ratio} {nodes:>15s}",
                  flush=True)
    write_results(args.json, "inference", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
