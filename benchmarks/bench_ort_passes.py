"""onnxruntime latency: graphforge's optimised export run with ORT's own graph optimisations
DISABLED, against the unoptimised export with ORT's optimisations ENABLED, for a hand-written MLP
and Transformer encoder (plus nn's TransformerEncoder when it exists). Prints ONNX node counts
before/after and the latency ratio optimised/ORT-optimised (target <= 1.0).

    python benchmarks/bench_ort_passes.py [--batch 32] [--runs 200]
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

import graphforge as gf
from graphforge import nn


class MLP(nn.Module):
    """Written from primitives, as users do: x @ W.T + b, relu, GELU spelled out, softmax spelled out."""

    def __init__(self, sizes=(256, 512, 512, 10)):
        super().__init__()
        self.weights = [nn.Parameter((o, i), init=nn.init.kaiming_uniform()) for i, o in zip(sizes, sizes[1:])]
        self.biases = [nn.Parameter((o,), init=nn.init.normal(0.02)) for o in sizes[1:]]
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            setattr(self, f"w{k}", w)
            setattr(self, f"b{k}", b)

    def forward(self, x):
        n = len(self.weights)
        for k in range(n):
            x = x @ self.weights[k].T + self.biases[k]
            if k < n - 1:
                x = gf.relu(x) if k % 2 == 0 else 0.5 * x * (1 + gf.erf(x / math.sqrt(2)))
        e = gf.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)


class EncoderLayer(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.d, self.h = d, heads
        for name, (i, o) in {"q": (d, d), "k": (d, d), "v": (d, d), "o": (d, d), "fc1": (d, ff), "fc2": (ff, d)}.items():
            setattr(self, name + "_w", nn.Parameter((o, i), init=nn.init.normal(0.05)))
            setattr(self, name + "_b", nn.Parameter((o,), init=nn.init.normal(0.02)))
        for name in ("n1", "n2"):
            setattr(self, name + "_g", nn.Parameter((d,), init=nn.init.normal(0.1, 1.0)))
            setattr(self, name + "_b", nn.Parameter((d,), init=nn.init.normal(0.1)))

    def dense(self, name, x):
        return x @ getattr(self, name + "_w").T + getattr(self, name + "_b")

    def norm(self, name, x):
        mu = x.mean(-1, keepdims=True)
        d = x - mu
        return d * gf.rsqrt((d * d).mean(-1, keepdims=True) + 1e-5) * getattr(self, name + "_g") + getattr(self, name + "_b")

    def forward(self, x):
        b, s = x.shape[0], x.shape[1]
        hd = self.d // self.h

        def heads(t):
            return t.reshape(b, s, self.h, hd).permute(0, 2, 1, 3)
        q, k, v = heads(self.dense("q", x)), heads(self.dense("k", x)), heads(self.dense("v", x))
        sc = q @ k.transpose(-2, -1) / math.sqrt(hd)
        e = gf.exp(sc - sc.max(-1, keepdims=True))
        a = ((e / e.sum(-1, keepdims=True)) @ v).permute(0, 2, 1, 3).reshape(b, s, self.d)
        x = self.norm("n1", x + self.dense("o", a))
        h = self.dense("fc1", x)
        h = 0.5 * h * (1 + gf.erf(h / math.sqrt(2)))
        return self.norm("n2", x + self.dense("fc2", h))


class Encoder(nn.Module):
    def __init__(self, layers=4, d=256, heads=4, ff=1024):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(d, heads, ff) for _ in range(layers)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def _session(proto, optimise: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _latency(session, feed, runs: int) -> float:
    for _ in range(max(3, runs // 10)):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def compare(name, model, spec, x, runs):
    from graphforge.runtimes.onnx import to_onnx

    g = gf.trace(model, spec, seed=0)
    opt = gf.optimize(g)
    raw_proto, opt_proto = to_onnx(g), to_onnx(opt)
    raw_sess, opt_sess = _session(raw_proto, True), _session(opt_proto, False)
    feed_raw = {raw_sess.get_inputs()[0].name: x}
    feed_opt = {opt_sess.get_inputs()[0].name: x}
    np.testing.assert_allclose(opt_sess.run(None, feed_opt)[0], raw_sess.run(None, feed_raw)[0], rtol=1e-3, atol=1e-4)
    t_raw, t_opt = _latency(raw_sess, feed_raw, runs), _latency(opt_sess, feed_opt, runs)
    print(f"{name:12s} onnx nodes {len(raw_proto.graph.node):5d} -> {len(opt_proto.graph.node):5d}   "
          f"unoptimised+ORT-opt {t_raw * 1e3:8.3f} ms   graphforge-opt+ORT-off {t_opt * 1e3:8.3f} ms   "
          f"ratio {t_opt / t_raw:5.2f}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        from graphforge.runtimes.onnx import to_onnx  # noqa: F401
    except ImportError as exc:
        print(f"graphforge.runtimes.onnx.to_onnx is not available yet ({exc}); nothing to compare", file=sys.stderr)
        return 1
    rng = np.random.default_rng(0)
    compare("mlp", MLP(), gf.TensorSpec(("batch", 256), "float32"),
            rng.standard_normal((args.batch, 256)).astype(np.float32), args.runs)
    compare("encoder", Encoder(), gf.TensorSpec(("batch", args.seq, 256), "float32"),
            rng.standard_normal((max(1, args.batch // 8), args.seq, 256)).astype(np.float32), args.runs)
    if hasattr(nn, "TransformerEncoder"):
        try:
            model = nn.TransformerEncoder(num_layers=4, d_model=256, nhead=4, dim_feedforward=1024)
            model.eval()
        except TypeError as exc:
            print(f"nn.TransformerEncoder skipped: {exc}")
        else:
            compare("nn.encoder", model, gf.TensorSpec(("batch", args.seq, 256), "float32"),
                    rng.standard_normal((max(1, args.batch // 8), args.seq, 256)).astype(np.float32), args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
