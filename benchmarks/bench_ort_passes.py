"""onnxruntime latency: graphforge's optimised export run with ORT's own graph optimisations
DISABLED, against the unoptimised export with ORT's optimisations ENABLED, for a hand-written MLP
and Transformer encoder (plus nn's TransformerEncoder when it exists). Prints ONNX node counts
before/after and the latency ratio optimised/ORT-optimised (target <= 1.0).

Timing: the two sessions' runs are interleaved (``benchmarks.common.interleaved_medians``).

    python benchmarks/bench_ort_passes.py [--batch 32] [--rounds 15] [--json out.json]
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

import graphforge as gf
from graphforge import nn

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, interleaved_medians, write_results  # noqa: E402

__all__ = ["MLP", "EncoderLayer", "Encoder", "compare", "main"]


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


def compare(name, model, spec, x, rounds: int = 15, tiny: bool = False) -> dict:
    from graphforge.runtimes.onnx import to_onnx

    g = gf.trace(model, spec, seed=0)
    opt = gf.optimize(g)
    raw_proto, opt_proto = to_onnx(g), to_onnx(opt)
    raw_sess, opt_sess = _session(raw_proto, True), _session(opt_proto, False)
    feed_raw = {raw_sess.get_inputs()[0].name: x}
    feed_opt = {opt_sess.get_inputs()[0].name: x}
    np.testing.assert_allclose(opt_sess.run(None, feed_opt)[0], raw_sess.run(None, feed_raw)[0], rtol=1e-3, atol=1e-4)
    res = interleaved_medians({"ort_opt": lambda: raw_sess.run(None, feed_raw), "gf_opt": lambda: opt_sess.run(None, feed_opt)},
                              rounds=rounds, warmup=1 if tiny else 10, min_chunk_s=0.002 if tiny else 0.05)
    t_raw, t_opt = res["ort_opt"]["median_s"], res["gf_opt"]["median_s"]
    print(f"{name:12s} onnx nodes {len(raw_proto.graph.node):5d} -> {len(opt_proto.graph.node):5d}   "
          f"unoptimised+ORT-opt {t_raw * 1e3:8.3f} ms   graphforge-opt+ORT-off {t_opt * 1e3:8.3f} ms   "
          f"ratio {t_opt / t_raw:5.2f}", flush=True)
    return {"name": name, "nodes_raw": len(raw_proto.graph.node), "nodes_opt": len(opt_proto.graph.node),
            "results": res, "ratio": t_opt / t_raw}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    add_common_args(parser)
    args = parser.parse_args(argv)
    rounds = 3 if args.tiny else args.rounds
    # --tiny: the same models at a fraction of the size (the smoke test)
    mlp_sizes, enc = ((32, 64, 64, 10), dict(layers=1, d=32, heads=2, ff=64)) if args.tiny else \
        ((256, 512, 512, 10), dict(layers=4, d=256, heads=4, ff=1024))
    seq = 8 if args.tiny else args.seq
    try:
        from graphforge.runtimes.onnx import to_onnx  # noqa: F401
    except ImportError as exc:
        print(f"graphforge.runtimes.onnx.to_onnx is not available yet ({exc}); nothing to compare", file=sys.stderr)
        return 1
    rng = np.random.default_rng(0)
    d = enc["d"]
    rows = [compare("mlp", MLP(mlp_sizes), gf.TensorSpec(("batch", mlp_sizes[0]), "float32"),
                    rng.standard_normal((args.batch, mlp_sizes[0])).astype(np.float32), rounds, args.tiny),
            compare("encoder", Encoder(**enc), gf.TensorSpec(("batch", seq, d), "float32"),
                    rng.standard_normal((max(1, args.batch // 8), seq, d)).astype(np.float32), rounds, args.tiny)]
    model = nn.TransformerEncoder(num_layers=enc["layers"], d_model=d, nhead=enc["heads"], dim_feedforward=enc["ff"])
    model.eval()
    rows.append(compare("nn.encoder", model, gf.TensorSpec(("batch", seq, d), "float32"),
                        rng.standard_normal((max(1, args.batch // 8), seq, d)).astype(np.float32), rounds, args.tiny))
    write_results(args.json, "ort_passes", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
