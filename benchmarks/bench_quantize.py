"""Post-training quantization, side by side with onnxruntime's own quantizer on the same float export.

The CNN example's LeNet is trained on the digits data, optimised (Conv+BN folded) and exported once
as float32 ONNX. Contenders, each an ONNX file run in onnxruntime (CPU, all graph optimisations):

* ``float32`` — the export itself;
* ``gf-int8-static`` — ``gf.quantize(graph, calibration, mode="int8-static")`` (min-max), QDQ;
* ``gf-int8-dynamic`` — ``gf.quantize(graph, mode="int8-dynamic")``;
* ``ort-static`` — ``onnxruntime.quantization.quantize_static`` on the float file (QDQ, per-channel,
  the same calibration batches, its defaults otherwise);
* ``ort-dynamic`` — ``onnxruntime.quantization.quantize_dynamic`` on the float file.

For each: file size (and ratio to float32), test accuracy on the 360 held-out digits, and median
latency at batch 1 and 64 (runs interleaved, ``benchmarks.common.interleaved_medians``): wall time
with onnxruntime's default threads (the targets), and the CPU time of one intra-op thread
(``time.thread_time``; ``cpu_latency``), which the other jobs on a loaded machine disturb far less.

``--model transformer`` does the same for the Transformer example (``examples/transformer.py``'s
RowTransformer, trained with that example's optimizer and schedule): the issue's second accuracy
anchor. It adds ``gf-int8-static-contrib`` and ``gf-int8-dynamic-contrib``: the same quantized graphs
exported for onnxruntime only (``contrib_ops=True``: ``MultiHeadAttention`` for the float attention between the
static file's integer projections; one ``QAttention`` per layer for the dynamic file's q/k/v projections and
attention), and ``float32-contrib`` (the float graph exported the same way) with ``ort-dynamic-contrib``
(onnxruntime's ``quantize_dynamic`` on it, which makes its packed ``Attention`` a ``QAttention``): the dynamic
contrib file's ratios are against that one, the same float export; the static one's against ``ort-static``.

    python benchmarks/bench_quantize.py [--model cnn|transformer] [--epochs 10] [--rounds 15] [--tiny] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, interleaved_medians, ort_settle, write_results  # noqa: E402

__all__ = ["train_cnn", "train_transformer", "quantize_all", "main"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCHES = (1, 64)


def train_cnn(epochs: int, *, limit: int | None = None):
    """(optimised float graph, x_train, x_test, y_test) of the CNN example trained ``epochs`` epochs."""
    import optax

    import graphforge as gf
    from graphforge import nn
    from graphforge.passes.quantize import drop_unused_params

    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        from _data import digits
        from cnn import LeNet, inputs
    finally:
        sys.path.pop(0)
    x_train, x_test, y_train, y_test = digits()
    x_train, x_test = x_train[:limit, None], x_test[:, None]
    y_train = y_train[:limit]
    trainer = gf.Trainer(LeNet(), nn.functional.cross_entropy, optax.adam(3e-3), inputs=[inputs],
                         targets=gf.TensorSpec(("batch",), "int64"), seed=0, progress=False)
    trainer.fit(x_train, y_train, epochs=epochs, batch_size=64)
    graph = gf.optimize(trainer.export_graph())
    drop_unused_params(graph)  # no pre-fold weights in the float file: an honest baseline size
    return graph, x_train, x_test, y_test


def train_transformer(epochs: int, *, limit: int | None = None):
    """(optimised float graph, x_train, x_test, y_test) of the Transformer example trained ``epochs``
    epochs, with the example's own optimizer (AdamW, warm-up + cosine schedule, clipping)."""
    import optax

    import graphforge as gf
    from graphforge import nn
    from graphforge.passes.quantize import drop_unused_params

    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        from _data import digits
        from transformer import RowTransformer, inputs
    finally:
        sys.path.pop(0)
    x_train, x_test, y_train, y_test = digits()
    x_train, y_train = x_train[:limit], y_train[:limit]
    steps = epochs * -(-len(x_train) // 64)
    schedule = optax.warmup_cosine_decay_schedule(0.0, 2e-3, min(100, steps // 10 + 1), steps)
    trainer = gf.Trainer(RowTransformer(), nn.functional.cross_entropy,
                         optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=1e-2)),
                         inputs=[inputs], targets=gf.TensorSpec(("batch",), "int64"), seed=0, progress=False)
    trainer.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=False)
    graph = gf.optimize(trainer.export_graph())
    drop_unused_params(graph)
    return graph, x_train, x_test, y_test


class _Reader:
    """onnxruntime's CalibrationDataReader over the same calibration batches graphforge uses."""

    def __init__(self, name: str, batches):
        self._it = iter([{name: b} for b in batches])

    def get_next(self):
        return next(self._it, None)


def quantize_all(graph, calibration: list, folder: str, *, contrib: bool = False) -> dict[str, str]:
    """Write every contender's ONNX file into ``folder``; ``{name: path}``. ``contrib``: also the
    graphforge files exported with onnxruntime's contrib kernels (``-contrib``)."""
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

    import graphforge as gf

    paths = {name: os.path.join(folder, name + ".onnx") for name in
             ("float32", "gf-int8-static", "gf-int8-dynamic", "ort-static", "ort-dynamic")}
    static = gf.quantize(graph, calibration, mode="int8-static")
    gf.save_onnx(static, paths["gf-int8-static"])
    # the float file at the opset of graphforge's QDQ file: onnxruntime's quantizer keeps the model's
    # opset, and onnxruntime 1.32 has no QuantizeLinear/DequantizeLinear kernels at the newest one
    from graphforge.runtimes.onnx import max_opset
    from graphforge.runtimes.onnx.quantize import qdq_opset

    gf.save_onnx(graph, paths["float32"], opset=qdq_opset(static, max_opset()))
    dynamic = gf.quantize(graph, mode="int8-dynamic")
    gf.save_onnx(dynamic, paths["gf-int8-dynamic"])
    name = graph.inputs[0].name
    quantize_static(paths["float32"], paths["ort-static"], _Reader(name, calibration), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    quantize_dynamic(paths["float32"], paths["ort-dynamic"])
    if contrib:
        for mode, qg in (("static", static), ("dynamic", dynamic)):
            paths[f"gf-int8-{mode}-contrib"] = os.path.join(folder, f"gf-int8-{mode}-contrib.onnx")
            gf.save_onnx(qg, paths[f"gf-int8-{mode}-contrib"], contrib_ops=True)
        # onnxruntime's quantizer on the contrib float export: its packed Attention becomes QAttention
        # (the quantizer cannot type the contrib node's output by shape inference: it is float)
        import onnx

        paths["float32-contrib"] = os.path.join(folder, "float32-contrib.onnx")
        gf.save_onnx(graph, paths["float32-contrib"], opset=qdq_opset(static, max_opset()), contrib_ops=True)
        paths["ort-dynamic-contrib"] = os.path.join(folder, "ort-dynamic-contrib.onnx")
        quantize_dynamic(paths["float32-contrib"], paths["ort-dynamic-contrib"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return paths


def _session(path: str, threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads  # 0: onnxruntime's default (one per core)
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("cnn", "transformer"), default="cnn",
                    help="the CNN example's LeNet (default) or the Transformer example's encoder")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--calibration", type=int, default=256, help="calibration rows (from the training split)")
    add_common_args(ap)
    args = ap.parse_args(argv)
    if args.tiny:
        args.epochs, args.rounds = 1, 3
    train = train_transformer if args.model == "transformer" else train_cnn
    graph, x_train, x_test, y_test = train(args.epochs, limit=256 if args.tiny else None)
    calibration = [x_train[i:i + 128] for i in range(0, min(args.calibration, len(x_train)), 128)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="gf-bench-quant-") as tmp:
        paths = quantize_all(graph, calibration, tmp, contrib=args.model == "transformer")
        sessions = {name: _session(path) for name, path in paths.items()}
        single = {name: _session(path, threads=1) for name, path in paths.items()}
        feed = graph.inputs[0].name
        base_size = os.path.getsize(paths["float32"])
        for name, s in sessions.items():
            pred = s.run(None, {feed: x_test})[0].argmax(1)
            rows.append({"name": name, "model": args.model, "bytes": os.path.getsize(paths[name]),
                         "size_ratio": base_size / os.path.getsize(paths[name]),
                         "accuracy": float((pred == y_test).mean()), "latency": {}, "cpu_latency": {}})
        for batch in BATCHES:
            x = np.ascontiguousarray(x_test[:batch])
            res = interleaved_medians({n: (lambda s=s: s.run(None, {feed: x})) for n, s in sessions.items()},
                                      rounds=args.rounds, settle_s=ort_settle(args.tiny))
            cpu = interleaved_medians({n: (lambda s=s: s.run(None, {feed: x})) for n, s in single.items()},
                                      rounds=args.rounds, clock=time.thread_time)
            for row in rows:
                row["latency"][str(batch)] = res[row["name"]]
                row["cpu_latency"][str(batch)] = cpu[row["name"]]
    by = {r["name"]: r for r in rows}
    for ours in [n for n in by if n.startswith("gf-")]:
        theirs = "ort-static" if "static" in ours else "ort-dynamic"
        if ours.endswith("-contrib") and theirs + "-contrib" in by:
            theirs += "-contrib"  # the same float export: onnxruntime's quantizer given the contrib file
        for batch in BATCHES:
            for key, kind in (("latency_ratio", "latency"), ("cpu_ratio", "cpu_latency")):
                by[ours][f"{key}_b{batch}"] = (by[ours][kind][str(batch)]["median_s"]
                                               / by[theirs][kind][str(batch)]["median_s"])
        by[ours]["vs"] = theirs
    print(f"{'model':24s} {'bytes':>8s} {'x smaller':>9s} {'accuracy':>9s} " +
          " ".join(f"{'b' + str(b) + ' ms':>9s}" for b in BATCHES) + " " +
          " ".join(f"{'b' + str(b) + ' cpu':>9s}" for b in BATCHES) + "  vs ORT quantizer: wall, cpu ratios")
    for r in rows:
        ratios = " ".join(f"{r[f'{k}_b{b}']:.2f}" for k in ("latency_ratio", "cpu_ratio") for b in BATCHES) \
            if "vs" in r else ""
        print(f"{r['name']:24s} {r['bytes']:8d} {r['size_ratio']:9.2f} {r['accuracy'] * 100:8.2f}% " +
              " ".join(f"{r['latency'][str(b)]['median_s'] * 1e3:9.3f}" for b in BATCHES) + " " +
              " ".join(f"{r['cpu_latency'][str(b)]['median_s'] * 1e3:9.3f}" for b in BATCHES) + f"  {ratios}")
    write_results(args.json, "quantize", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
