"""ONNX inference of a scan recurrence in onnxruntime: a 256-step elementwise RNN
(``h = tanh(w*h + u*x_t + b)``, ys stacked) written with ``gf.scan``, optimised and exported by
graphforge (one ``Scan`` node), against the same recurrence written by hand as an ONNX ``Scan``
(weights read by name from the outer graph, the way a person writes it with ``onnx.helper``).
Prints the latency of both and their ratio (target <= 1.05), plus their node counts.

PyTorch is no peer here: ``torch.onnx`` cannot export a loop as Scan/Loop (pytorch#146674); it
unrolls it. Timing: the two sessions' runs are interleaved (``benchmarks.common.interleaved_medians``).

    python benchmarks/bench_scan_onnx.py [--steps 256] [--batch 32] [--hidden 256] [--rounds 15] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import graphforge as gf
from graphforge import nn

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, interleaved_medians, write_results  # noqa: E402

__all__ = ["ElementwiseRNN", "hand_written_scan", "compare", "main"]


class ElementwiseRNN(nn.Module):
    """h_t = tanh(w * h_{t-1} + u * x_t + b) over the leading axis of ``xs``; returns (h_T, all h_t)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.w = nn.Parameter((hidden,), init=nn.init.normal(0.5))
        self.u = nn.Parameter((hidden,), init=nn.init.normal(0.5))
        self.b = nn.Parameter((hidden,), init=nn.init.normal(0.1))

    def forward(self, xs):
        def step(h, x):
            h = gf.tanh(self.w * h + self.u * x + self.b)
            return h, h

        return gf.scan(step, gf.zeros((xs.shape[1], self.hidden)), xs)


def hand_written_scan(params: dict, steps: int, batch: int, hidden: int, opset: int):
    """The same recurrence as one hand-written ONNX Scan (the peer)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    F = TensorProto.FLOAT
    body = helper.make_graph(
        [helper.make_node("Mul", ["w", "h_in"], ["wh"]), helper.make_node("Mul", ["u", "x_t"], ["ux"]),
         helper.make_node("Add", ["wh", "ux"], ["s"]), helper.make_node("Add", ["s", "b"], ["pre"]),
         helper.make_node("Tanh", ["pre"], ["h_out"]), helper.make_node("Identity", ["h_out"], ["y_t"])],
        "step", [helper.make_tensor_value_info("h_in", F, [batch, hidden]),
                 helper.make_tensor_value_info("x_t", F, [batch, hidden])],
        [helper.make_tensor_value_info("h_out", F, [batch, hidden]),
         helper.make_tensor_value_info("y_t", F, [batch, hidden])])
    graph = helper.make_graph(
        [helper.make_node("Scan", ["h0", "xs"], ["h", "ys"], body=body, num_scan_inputs=1)], "hand_rnn",
        [helper.make_tensor_value_info("h0", F, [batch, hidden]),
         helper.make_tensor_value_info("xs", F, [steps, batch, hidden])],
        [helper.make_tensor_value_info("h", F, [batch, hidden]),
         helper.make_tensor_value_info("ys", F, [steps, batch, hidden])],
        [numpy_helper.from_array(np.asarray(params[k], np.float32), k) for k in ("w", "u", "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _session(proto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def compare(steps: int, batch: int, hidden: int, rounds: int = 15, tiny: bool = False) -> dict:
    from graphforge.runtimes.onnx import to_onnx

    g = gf.optimize(gf.trace(ElementwiseRNN(hidden), gf.TensorSpec(("steps", "batch", hidden), "float32", name="xs"),
                             seed=0))
    gf_proto = to_onnx(g)
    hand = hand_written_scan(g.params, steps, batch, hidden, gf_proto.opset_import[0].version)
    gf_sess, hand_sess = _session(gf_proto), _session(hand)
    xs = np.random.default_rng(0).standard_normal((steps, batch, hidden)).astype(np.float32)
    feed_gf = {"xs": xs}
    feed_hand = {"xs": xs, "h0": np.zeros((batch, hidden), np.float32)}
    for a, b in zip(gf_sess.run(None, feed_gf), hand_sess.run(None, feed_hand)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    res = interleaved_medians({"graphforge-ort": lambda: gf_sess.run(None, feed_gf),
                               "hand-ort": lambda: hand_sess.run(None, feed_hand)},
                              rounds=rounds, warmup=1 if tiny else 5, min_chunk_s=0.002 if tiny else 0.05)
    t_gf, t_hand = res["graphforge-ort"]["median_s"], res["hand-ort"]["median_s"]

    def count(p):
        from graphforge.runtimes.onnx.control_flow import subgraphs

        return len(p.graph.node) + sum(len(s.node) for n in p.graph.node for s in subgraphs(n))
    row = {"name": f"rnn{steps}x{batch}x{hidden}", "steps": steps, "batch": batch, "hidden": hidden,
           "nodes": {"graphforge": count(gf_proto), "hand": count(hand)}, "results": res, "ratio": t_gf / t_hand}
    print(f"scan RNN {steps} steps, batch {batch}, hidden {hidden}: graphforge ONNX {t_gf * 1e3:8.3f} ms "
          f"({row['nodes']['graphforge']} nodes)   hand-written Scan {t_hand * 1e3:8.3f} ms "
          f"({row['nodes']['hand']} nodes)   ratio {row['ratio']:.3f}", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    add_common_args(parser)
    args = parser.parse_args(argv)
    steps, batch, hidden = (8, 2, 8) if args.tiny else (args.steps, args.batch, args.hidden)
    rows = [compare(steps, batch, hidden, 3 if args.tiny else args.rounds, args.tiny)]
    write_results(args.json, "scan_onnx", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
