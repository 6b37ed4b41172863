"""Which native ONNX composite ops the export may emit: the opset must define the op, and (by
default) the installed onnxruntime must run it with a kernel of its own.

onnxruntime expands an op it has no kernel for at the model's opset into the op's ONNX function
body before it runs: onnxruntime 1.32 has Attention kernels for versions 23 and 24 only, so at
opset >= 25 one ``Attention`` node becomes ~59 primitive nodes, slower than graphforge's own
MatMul-Softmax-MatMul decomposition. :func:`ort_runs_natively` finds out once per (op, opset), by
loading a one-node model with graph optimisations off and reading back the model onnxruntime
actually runs (``SessionOptions.optimized_model_filepath``): the op survives as one node exactly
when a kernel exists. :func:`native_policy` turns the exporter's ``native_ops=`` option into the
per-op answer the lowerings ask through ``Emitter.native``.
"""
from __future__ import annotations

import functools
import os
import tempfile

import onnx
from onnx import TensorProto, helper

from graphforge.errors import ExportError

__all__ = ["COMPOSITE_OPS", "opset_has", "ort_runs_natively", "native_policy"]

# ONNX op -> (input shapes of the probe model, attributes): the composites graphforge can decompose
COMPOSITE_OPS: dict[str, tuple[list[list[int]], dict]] = {
    "LayerNormalization": ([[2, 3, 4], [4], [4]], {"axis": -1}),
    "Gelu": ([[2, 3]], {}),
    "Attention": ([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]], {}),
    # nn.LSTM/GRU/RNN scans (recurrent.py); X (seq, batch, in), W, R: gates·hidden rows
    "LSTM": ([[2, 1, 3], [1, 8, 3], [1, 8, 2]], {"hidden_size": 2}),
    "GRU": ([[2, 1, 3], [1, 6, 3], [1, 6, 2]], {"hidden_size": 2}),
    "RNN": ([[2, 1, 3], [1, 2, 3], [1, 2, 2]], {"hidden_size": 2}),
}


def opset_has(op_type: str, opset: int) -> bool:
    """True when ai.onnx at ``opset`` defines ``op_type``."""
    try:
        onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def ort_runs_natively(op_type: str, opset: int) -> bool:
    """True when the installed onnxruntime runs ``op_type`` at ``opset`` as one kernel (not by
    expanding its function body). Without onnxruntime, or for an op there is no probe for, True."""
    try:
        import onnxruntime as ort
    except ImportError:
        return True
    if op_type not in COMPOSITE_OPS:
        return True
    if not opset_has(op_type, opset):
        return False
    shapes, attrs = COMPOSITE_OPS[op_type]
    names = [f"in{i}" for i in range(len(shapes))]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip(names, shapes)]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node(op_type, names, ["out"], **attrs)], "probe", inputs, [output])
    ops = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
    with tempfile.TemporaryDirectory(prefix="gf-ort-probe-") as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.optimized_model_filepath = os.path.join(tmp, "probe.onnx")
        options.log_severity_level = 4
        try:
            ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
            ran = onnx.load(options.optimized_model_filepath)
        except Exception:  # noqa: BLE001 - no kernel and no usable function body: not native either
            return False
    return [n.op_type for n in ran.graph.node] == [op_type]


def native_policy(native_ops):
    """``native_ops`` (the ``to_onnx`` option) → ``fn(op_type, opset) -> bool``.

    None: native where the opset has the op and the installed onnxruntime has a kernel for it;
    True: wherever the opset has it (for another runtime); False: never (always decomposed);
    a collection of ONNX op names (from :data:`COMPOSITE_OPS`): those wherever the opset has them,
    the others decomposed."""
    if native_ops is None:
        return lambda op, opset: opset_has(op, opset) and ort_runs_natively(op, opset)
    if native_ops is True:
        return opset_has
    if native_ops is False:
        return lambda op, opset: False
    if isinstance(native_ops, str) or not hasattr(native_ops, "__iter__"):
        raise ExportError(f"native_ops must be None, True, False or a collection of ONNX op names, got "
                          f"{native_ops!r}", hint=f"e.g. native_ops={{'Attention'}}; known: {', '.join(COMPOSITE_OPS)}")
    chosen = set(native_ops)
    unknown = sorted(str(n) for n in chosen - set(COMPOSITE_OPS))
    if unknown:
        raise ExportError(f"native_ops names unknown op(s) {', '.join(unknown)}",
                          hint=f"graphforge chooses between native and decomposed forms for {', '.join(COMPOSITE_OPS)}")
    return lambda op, opset: op in chosen and opset_has(op, opset)
