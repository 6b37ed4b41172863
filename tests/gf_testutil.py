"""Helpers shared by the foundation tests: one-node graphs from op-table samples, float64 copies
for gradient checks, central finite differences, and the small whole models several tests trace."""
from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import graphforge as gf
from graphforge import dtypes as _dt
from graphforge import nn
from graphforge.ir.dims import dim_symbols, resolve_shape
from graphforge.ir.graph import Graph
from graphforge.ir.types import TensorType
from graphforge.ops.registry import Sample, all_ops
from graphforge.ops.samples import make_inputs
from graphforge.trace.builder import Builder
from graphforge.trace.tensor import Tensor

__all__ = ["sample_params", "op_params", "build_sample_graph", "to_float64", "sample_arrays",
           "weighted_loss_graph", "numeric_grad", "resolve_shape", "dim_symbols", "MLPLoss", "EncoderLoss",
           "zip_outputs", "free_port", "spawn_train_process", "one_node_onnx_model", "onnx_value_info",
           "ort_optimized_model", "ort_optimized_op_counts"]


def zip_outputs(got, want, *more, what: str = "") -> list[tuple]:
    """``zip(got, want, *more)`` for comparing outputs, after checking every sequence has the same length.

    A bare zip stops at the shortest sequence, so a back end that drops (or adds) an output would be
    compared on the common prefix and pass."""
    seqs = [list(got), list(want), *(list(m) for m in more)]
    lengths = [len(s) for s in seqs]
    assert len(set(lengths)) == 1, f"{what + ': ' if what else ''}output counts differ: got {lengths[0]}, " \
                                   f"expected {lengths[1:]}"
    return list(zip(*seqs))


def sample_params(predicate=None) -> list:
    """``pytest.param(op_name, index, id="op-index")`` for every sample of every registered op."""
    out = []
    for name, opdef in all_ops().items():
        for k, sample in enumerate(opdef.samples):
            if predicate is None or predicate(opdef, sample):
                out.append(pytest.param(name, k, id=f"{name}-{k}"))
    return out


def op_params() -> list:
    return [pytest.param(name, id=name) for name in all_ops()]


def build_sample_graph(op: str, sample: Sample, name: str | None = None) -> tuple[Graph, list]:
    """A Graph with one input per sample input (``x0``, ``x1``, ...) and one ``op`` node."""
    graph = Graph(name or f"{op}_sample")
    inputs = [graph.add_input(f"x{i}", t) for i, t in enumerate(sample.inputs)]
    builder = Builder(graph, capture_locations=False)
    regions = sample.regions(builder, list(sample.inputs), dict(sample.attrs)) if sample.regions else None
    outs = builder.emit(op, inputs, dict(sample.attrs), regions=regions)
    graph.set_outputs(outs)
    return graph, outs


_WIDEN = {"float32": "float64", "float16": "float64", "bfloat16": "float64"}


def to_float64(sample: Sample) -> Sample:
    """The same sample with every float input (and float ``dtype`` attribute) in float64."""
    inputs = [TensorType(t.shape, _WIDEN.get(t.dtype, t.dtype)) for t in sample.inputs]
    attrs = {}
    for key, value in sample.attrs.items():
        if isinstance(value, str) and value in _WIDEN:
            value = _WIDEN[value]
        attrs[key] = value
    return Sample(inputs, attrs=attrs, bind=dict(sample.bind), domain=sample.domain, grad=sample.grad,
                  note=sample.note, regions=sample.regions)


def sample_arrays(sample: Sample, seed: int = 0) -> list[np.ndarray]:
    """make_inputs(sample), with float arrays converted to the sample's (possibly widened) dtypes."""
    arrays = make_inputs(sample, seed)
    return [a.astype(_dt.to_numpy_dtype(t.dtype)) if _dt.is_float(t.dtype) else a
            for a, t in zip(arrays, sample.inputs)]


def weighted_loss_graph(op: str, sample: Sample) -> tuple[Graph, list[str], list[str]]:
    """``sum_j sum(out_j * w_j)`` over the op's float outputs; the weights ``w_j`` are graph inputs
    (so symbolic dims stay symbolic). Returns (graph, data input names, weight input names)."""
    graph, outs = build_sample_graph(op, sample, f"{op}_loss")
    data_names = [v.name for v in graph.inputs]
    builder = Builder(graph, capture_locations=False)
    loss = None
    weight_names = []
    with builder.activate():
        for j, out in enumerate(outs):
            if not _dt.is_float(out.type.dtype):
                continue
            w = graph.add_input(f"w{j}", out.type)
            weight_names.append(w.name)
            term = gf.sum(Tensor(out, builder) * Tensor(w, builder))
            loss = term if loss is None else loss + term
    assert loss is not None, f"{op} has no float output"
    graph.set_outputs([loss.value], ["loss"])
    graph.verify()
    return graph, data_names, weight_names


def numeric_grad(fn, arrays: list[np.ndarray], i: int, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of the scalar ``fn(arrays)`` with respect to ``arrays[i]``."""
    base = [np.array(a, copy=True) for a in arrays]
    grad = np.zeros(base[i].shape, dtype=np.float64)
    for idx in np.ndindex(*base[i].shape):
        plus = [a.copy() for a in base]
        minus = [a.copy() for a in base]
        plus[i][idx] += eps
        minus[i][idx] -= eps
        grad[idx] = (float(fn(plus)) - float(fn(minus))) / (2 * eps)
    return grad


# ---- small whole models ---------------------------------------------------------------------------

class MLPLoss(nn.Module):
    """12 -> 16 -> 5 logits and their cross-entropy against int64 labels ``y``: a scalar-loss model."""

    def __init__(self):
        super().__init__()
        self.layer1 = nn.Linear(12, 16)
        self.layer2 = nn.Linear(16, 5)

    def forward(self, x, y):
        return nn.functional.cross_entropy(self.layer2(self.layer1(x).relu()), y)


class EncoderLoss(nn.Module):
    """A two-layer nn.TransformerEncoder (d_model 16, 2 heads, no dropout) under a mean-square loss."""

    def __init__(self):
        super().__init__()
        self.enc = nn.TransformerEncoder(num_layers=2, d_model=16, nhead=2, dim_feedforward=32, dropout=0.0)

    def forward(self, x):
        return (self.enc(x) ** 2).mean()


def one_node_onnx_model(node, inputs, outputs, inits=(), opset: int = 19):
    """An ONNX model of the single ``node`` (default domain at ``opset``, IR version 9), for importer tests."""
    from onnx import helper
    g = helper.make_graph([node], "t", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    return m


def onnx_value_info(name: str, shape, dtype=None):
    """An ONNX ValueInfo (float32 unless ``dtype``, a ``TensorProto`` element type, says otherwise)."""
    from onnx import TensorProto, helper
    return helper.make_tensor_value_info(name, TensorProto.FLOAT if dtype is None else dtype, shape)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (tests bind 127.0.0.1 only)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_train_process(train_file, pid: int, port: int, *extra: str) -> subprocess.Popen:
    """Process ``pid`` of a two-process ``graphforge train`` on loopback (CPU, gloo collectives),
    stdout and stderr merged into ``.stdout`` as text."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, "-m", "graphforge.cli", "train", str(train_file), "--quiet",
           "--num-processes", "2", "--process-id", str(pid), "--coordinator", f"127.0.0.1:{port}", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ort_optimized_model(model, tmp_path):
    """``model`` (a ModelProto or a file path) as onnxruntime runs it on CPU: the graph its load-time
    optimiser writes back (``SessionOptions.optimized_model_filepath``), as a ModelProto."""
    import onnx
    import onnxruntime as ort

    path, opt = str(tmp_path / "q.onnx"), str(tmp_path / "opt.onnx")
    if isinstance(model, str):
        path = model
    else:
        onnx.save(model, path)
    options = ort.SessionOptions()
    options.optimized_model_filepath = opt
    options.log_severity_level = 3
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return onnx.load(opt)


def ort_optimized_op_counts(model, tmp_path) -> collections.Counter:
    """The op types of ``model`` as onnxruntime runs it on CPU (:func:`ort_optimized_model`), counted."""
    return collections.Counter(n.op_type for n in ort_optimized_model(model, tmp_path).graph.node)
