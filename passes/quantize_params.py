"""Int8 storage of the float parameters that int8 quantization leaves float.

After ``quantize_static`` / ``quantize_dynamic`` the weights of the quantized ops are int8, but the
parameters float ops read stay float32: LayerNorm scales and shifts, biases added in float (a
``linear`` on 3-D activations: ``MatMul`` + ``Add``, where onnxruntime adds the bias in float anyway),
position tables, embedding tables. In a small Transformer they are a tenth of the quantized file.
:func:`quantize_other_params` stores each as int8 (symmetric, full range [-127, 127]) and
``cast(q, float32) * scale`` before its readers — per row for tables (rank 2+: one scale per index of
axis 0, which is what a row lookup reads), per tensor for vectors —, so every back end still computes
in float32 from values within half a step (max|row| / 254) of the originals.

Why ``cast * scale`` and not ``dequantize_linear``: it is the same arithmetic, but onnxruntime folds a
Cast and a Mul of constants when it loads the model — the float values then cost nothing per call, and
a bias is still fused into the integer kernel before it (``DynamicQuantizeMatMul`` takes a constant
bias) — while it keeps every DequantizeLinear (they mark its integer-kernel fusions) and runs it on
each call.

An ``embedding`` lookup reads the int8 table itself and scales the rows it gathered
(``embedding(q) * embedding(scales)``): a vocabulary-sized table is never dequantized whole.

Parameters under ``min_size`` elements stay float32: a dequantize node and its scale cost more bytes
than the three bytes per element they save.
"""
from __future__ import annotations

import numpy as np

from graphforge.errors import ConfigError
from graphforge.ir.graph import Graph, Value

__all__ = ["quantize_other_params", "quantize_rows", "half_scales", "OTHER_PARAMS", "MIN_SIZE"]

OTHER_PARAMS = ("int8", "float")
MIN_SIZE = 32


def half_scales(scale: np.ndarray) -> np.ndarray:
    """``scale`` (float32) rounded *up* to float16 values where every entry is a normal float16 (so a
    weight quantized with it never clips), else ``scale`` itself. An int8 grid has 7-8 bits of
    resolution: a step 0.05 % coarser changes nothing, and the scales take half the bytes."""
    scale = np.asarray(scale, np.float32)
    info = np.finfo(np.float16)
    if not scale.size or not np.all((scale >= info.tiny) & (scale <= info.max / 2)):
        return scale
    h = scale.astype(np.float16)
    h = np.where(h.astype(np.float32) < scale, np.nextafter(h, np.float16(np.inf)), h)
    return h.astype(np.float32)


def quantize_rows(array: np.ndarray, *, half: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 of ``array``: per row (axis 0) for rank >= 2, per tensor otherwise.
    Returns ``(q int8, scale float32)``; ``scale`` has one entry per row (shape ``()`` per tensor);
    ``half``: float16 values (:func:`half_scales`)."""
    a = np.asarray(array, np.float32)
    if a.ndim >= 2:
        amax = np.abs(a.reshape(a.shape[0], -1)).max(axis=1)
    else:
        amax = np.asarray(np.abs(a).max(initial=0.0))
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    scale = half_scales(scale) if half and scale.ndim else scale
    full = scale.reshape((-1,) + (1,) * (a.ndim - 1)) if a.ndim >= 2 else scale
    return np.clip(np.rint(a / full), -127, 127).astype(np.int8), scale


def _candidates(g: Graph, min_size: int, names) -> list[Value]:
    out = []
    for name, value in g.param_values.items():
        array = g.params.get(name)
        if names is not None and name not in names:
            continue
        if array is None or value.type.dtype != "float32" or not value.uses or np.size(array) < min_size:
            continue
        if any(user.op in ("dequantize_linear", "quantize_linear") for user, _ in value.uses):
            continue  # a quantization parameter (a scale) is not stored quantized itself
        out.append(value)
    return out


def quantize_other_params(g: Graph, *, mode: str = "int8", min_size: int = MIN_SIZE, names=None) -> list[str]:
    """Store every float32 parameter of ``g`` with at least ``min_size`` elements as int8 (see the
    module docstring), in place; ``names``: only those parameters (the quantization passes pass the
    graph's original ones, so the scales they made stay as they are). ``mode="float"`` leaves them.
    Returns the names of the parameters replaced (their float arrays are removed from ``g``)."""
    from .quantize import _Emit, drop_unused_params  # (quantize imports this module)

    if mode not in OTHER_PARAMS:
        raise ConfigError(f"other_params must be one of {', '.join(map(repr, OTHER_PARAMS))}, got {mode!r}")
    if mode == "float" or not len(g.nodes):
        return []
    em = _Emit(g)
    done = []
    for value in _candidates(g, min_size, None if names is None else set(names)):
        q, scale = quantize_rows(g.params[value.name], half=True)
        user = value.uses[0][0]
        lookups = [(n, i) for n, i in value.uses if n.op == "embedding" and i == 0]
        # at the start of the graph (it dominates every reader, in regions too), with a reader's provenance
        with em.b.inserting_before(g.nodes.first), em.b.provenance(user.scope, user.loc):
            qv = em.const(q, f"{value.name}.quantized", "int8")
            sv = em.const(scale, f"{value.name}.scale") if not scale.ndim else None  # (per row: below)
            dense = [(n, i) for n, i in value.uses if (n, i) not in lookups]
            if dense:  # cast * scale, not dequantize_linear: see the module docstring
                if scale.ndim:
                    sv = em.scale(scale.reshape((-1,) + (1,) * (q.ndim - 1)), f"{value.name}.scale")
                dq = em.emit("mul", [em.emit("cast", [qv], dtype="float32"), sv])
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
        sv = em.scale(scale.reshape(-1, 1), f"{stem}.row_scale")
        rows = em.emit("cast", [em.emit("embedding", [qv, ids])], dtype="float32")
        y = em.emit("mul", [rows, em.emit("embedding", [sv, ids])])
    if y.type != node.outputs[0].type:
        raise ConfigError(f"quantize_other_params: the int8 lookup at {node.provenance()} gives {y.type}, "
                          f"expected {node.outputs[0].type}")
    em.graph.replace_all_uses_with(node.outputs[0], y)
    em.graph.erase(node)
