"""Int8 storage of the float parameters that int8 quantization leaves float.

After ``quantize_static`` / ``quantize_dynamic`` the weights of the quantized ops are int8, but the
parameters float ops read stay float32: LayerNorm scales and shifts, biases added in float (a
``linear`` on 3-D activations: ``MatMul`` + ``Add``, where onnxruntime adds the bias in float anyway),
position tables, embedding tables. In a small Transformer they are a tenth of the quantized file.
:func:`quantize_other_params` stores each as int8 (symmetric, full range [-127, 127]) with a
``dequantize_linear`` before its readers — per row for tables (rank 2+: one scale per index of axis 0,
which is what a row lookup reads), per tensor for vectors —, so every back end still computes in
float32 from values within half a step (max|row| / 254) of the originals.

An ``embedding`` lookup reads the int8 table itself and scales the rows it gathered
(``embedding(q) * embedding(scales)``): a vocabulary-sized table is never dequantized whole.

Parameters under ``min_size`` elements stay float32: a dequantize node and its scale cost more bytes
than the three bytes per element they save.
"""
from __future__ import annotations

import numpy as np

from graphforge.errors import ConfigError
from graphforge.ir.graph import Graph, Value

__all__ = ["quantize_other_params", "quantize_rows", "OTHER_PARAMS", "MIN_SIZE"]

OTHER_PARAMS = ("int8", "float")
MIN_SIZE = 32


def quantize_rows(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 of ``array``: per row (axis 0) for rank >= 2, per tensor otherwise.
    Returns ``(q int8, scale float32)``; ``scale`` has one entry per row (shape ``()`` per tensor)."""
    a = np.asarray(array, np.float32)
    if a.ndim >= 2:
        amax = np.abs(a.reshape(a.shape[0], -1)).max(axis=1)
    else:
        amax = np.asarray(np.abs(a).max(initial=0.0))
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    full = scale.reshape((-1,) + (1,) * (a.ndim - 1)) if a.ndim >= 2 else scale
    return np.clip(np.rint(a / full), -127, 127).astype(np.int8), scale


def _candidates(g: Graph, min_size: int) -> list[Value]:
    out = []
    for name, value in g.param_values.items():
        array = g.params.get(name)
        if array is None or value.type.dtype != "float32" or not value.uses or np.size(array) < min_size:
            continue
        if any(user.op in ("dequantize_linear", "quantize_linear") for user, _ in value.uses):
            continue  # a quantization parameter (a scale) is not stored quantized itself
        out.append(value)
    return out


def quantize_other_params(g: Graph, *, mode: str = "int8", min_size: int = MIN_SIZE) -> list[str]:
    """Store every float32 parameter of ``g`` with at least ``min_size`` elements as int8 (see the
    module docstring), in place. ``mode="float"`` leaves them. Returns the names of the parameters
    replaced (their float arrays are removed from ``g``)."""
    from .quantize import _Emit, drop_unused_params  # (quantize imports this module)

    if mode not in OTHER_PARAMS:
        raise ConfigError(f"other_params must be one of {', '.join(map(repr, OTHER_PARAMS))}, got {mode!r}")
    if mode == "float" or not len(g.nodes):
        return []
    em = _Emit(g)
    done = []
    for value in _candidates(g, min_size):
        q, scale = quantize_rows(g.params[value.name])
        user = value.uses[0][0]
        lookups = [(n, i) for n, i in value.uses if n.op == "embedding" and i == 0]
        # at the start of the graph (it dominates every reader, in regions too), with a reader's provenance
        with em.b.inserting_before(g.nodes.first), em.b.provenance(user.scope, user.loc):
            qv = em.const(q, f"{value.name}.quantized", "int8")
            sv = em.const(scale, f"{value.name}.scale")
            dense = [(n, i) for n, i in value.uses if (n, i) not in lookups]
            if dense:
                dq = em.emit("dequantize_linear", [qv, sv], axis=0, block_size=0)
        for node, i in dense:
            node.set_input(i, dq)
        for node, i in lookups:
            _scaled_lookup(em, node, qv, scale, value.name)
        done.append(value.name)
    drop_unused_params(g)
    return done


def _scaled_lookup(em, node, qv: Value, scale: np.ndarray, stem: str) -> None:
    """``embedding(table, ids)`` → ``cast(embedding(q, ids)) * embedding(scales, ids)``: only the rows
    looked up are dequantized."""
    ids = node.inputs[1]
    with em.at(node, after=False):
        sv = em.const(scale.reshape(-1, 1), f"{stem}.row_scale")
        rows = em.emit("cast", [em.emit("embedding", [qv, ids])], dtype="float32")
        y = em.emit("mul", [rows, em.emit("embedding", [sv, ids])])
    if y.type != node.outputs[0].type:
        raise ConfigError(f"quantize_other_params: the int8 lookup at {node.provenance()} gives {y.type}, "
                          f"expected {node.outputs[0].type}")
    em.graph.replace_all_uses_with(node.outputs[0], y)
    em.graph.erase(node)
