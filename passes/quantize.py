"""Post-training quantization as IR rewrites: QDQ graphs that onnxruntime runs as integer kernels.

Three modes (``gf.quantize`` picks one; the calibration that static mode needs is done by
``graphforge.runtimes.calibration``, which runs graphs and so lives in the runtimes layer):

* ``int8-static`` — :func:`quantize_static`: weights int8, symmetric, per output channel; every
  activation entering a conv2d / linear / matmul-with-a-weight gets a
  ``quantize_linear → dequantize_linear`` pair with the scale and zero point of its calibrated
  range (uint8, asymmetric, the range always holding 0), and so does a conv2d's output and a
  linear's / matmul's output that another quantized op reads (:func:`_feeds_quantized`); biases
  int32 with scale ``input_scale * weight_scale`` where the integer kernel takes one (conv2d, a
  linear on 2-D activations). That is the QDQ form onnxruntime fuses into QLinearConv / QGemm /
  MatMulIntegerToFloat. A ReLU (or ``linear``'s fused relu) right after a quantized output pair is
  dropped: a uint8 range starting at 0 clips there exactly. Values that only move or max-pool
  a quantized activation (:data:`PASS_THROUGH`) reuse its parameters, so no requantisation sits
  between them. Graph outputs stay float. A linear on 3-D activations (MatMul + Add in ONNX)
  stores its int8 weight (in, out).
* ``int8-dynamic`` — :func:`quantize_dynamic` (pass ``quantize_dynamic``): weights as above; each
  activation is quantized at run time (``dynamic_quantize_linear``) and the product is
  ``matmul_integer`` / ``conv_integer`` rescaled in float — onnxruntime's ``quantize_dynamic`` form.
* ``int4-weight`` — :func:`quantize_weights_int4` (pass ``quantize_int4``): weight-only,
  symmetric 4-bit values in blocks of ``block_size`` along the input axis (per output channel
  for convolutions), dequantized before the float op. Stored as ``int4`` when graphforge's dtypes
  have it, else as int8 holding 4-bit values (same numbers, int8-sized file).

Both int8 modes store their scales as float16 values where that is smaller (:meth:`_Emit.scale`)
and, with ``other_params="int8"``, the float parameters float ops read as int8 too
(``quantize_params.py``).

``reduce_range`` (default on) keeps int8 weights in [-63, 63]: onnxruntime's uint8 × int8 kernels on
x86 without VNNI add pairs of products in int16 and saturate beyond that (its quantizer has the same
option for the same reason). Values are keyed by :func:`value_key` so that calibration, done on
another copy of the graph, names the same values.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from graphforge import dtypes as _dt
from graphforge.errors import ConfigError
from graphforge.ir.graph import Graph, Node, Value
from graphforge.ir.types import TensorType
from graphforge.ops.quantize import qrange
from graphforge.trace.builder import Builder

from .fold_norm import fold_norm_affine  # noqa: F401  (registers the pass; gf.quantize runs it first)
from .quantize_params import OTHER_PARAMS, half_scales, quantize_other_params
from .registry import register_pass

__all__ = ["QUANTIZED_OPS", "PASS_THROUGH", "QuantPlan", "plan", "value_key", "activation_params",
           "quantize_weight", "weight_scale", "drop_unused_params", "quantize_static", "quantize_dynamic", "quantize_weights_int4",
           "INT4_STORAGE", "half_scales", "HALF_SCALES_MIN", "OTHER_PARAMS"]

QUANTIZED_OPS = ("conv2d", "linear", "matmul")
# ops whose output a quantized input's parameters describe too (they move or select values)
PASS_THROUGH = ("max_pool2d", "flatten", "reshape", "transpose", "squeeze", "unsqueeze")
INT4_STORAGE = "int4" if "int4" in _dt.DTYPES else "int8"
HALF_SCALES_MIN = 16  # scales per tensor from which float16 storage + a cast node is the smaller file


def value_key(graph: Graph, value: Value) -> str:
    """A name for ``value`` that a copy of ``graph`` shares: the input's name, else ``"node:output"``."""
    if value.kind == "input":
        return value.name
    node = value.producer
    for i, n in enumerate(graph.nodes):
        if n is node:
            return f"{i}:{value.index}"
    raise ConfigError(f"value {value!r} is not produced by a top-level node of graph {graph.name!r}")


def _weight_axis(node: Node) -> tuple[int, int] | None:
    """(index of the weight input, its output-channel axis) for a quantizable node, else None."""
    if node.op not in QUANTIZED_OPS or len(node.inputs) < 2:
        return None
    w = node.inputs[1]
    if w.kind not in ("param", "const") or not _dt.is_float(w.type.dtype) or node.inputs[0].type.dtype != "float32":
        return None
    if node.op == "conv2d":
        return (1, 0) if w.type.rank == 4 else None
    if w.type.rank != 2 or node.inputs[0].type.rank < 2:
        return None
    if node.op == "linear":
        return 1, (0 if node.attrs.get("transpose_b", True) else 1)
    return 1, 1  # matmul: (in, out)


@dataclass
class QuantPlan:
    """What static quantization touches: the ops (nodes), the values given QDQ pairs, and the values whose
    calibrated range each of those uses (``root[key]``; ``roots`` in graph order, to calibrate)."""

    ops: list[Node] = field(default_factory=list)
    sites: list[Value] = field(default_factory=list)
    root: dict[int, Value] = field(default_factory=dict)
    roots: list[Value] = field(default_factory=list)
    absorbed_relu: dict[int, Node] = field(default_factory=dict)  # site id -> relu node to drop


def _sole_relu(graph: Graph, value: Value) -> Node | None:
    uses = value.uses
    if len(uses) == 1 and uses[0][0].op == "relu" and not graph.is_output(value):
        return uses[0][0]
    return None


def plan(graph: Graph, params: dict | None = None) -> QuantPlan:
    """The :class:`QuantPlan` of static quantization for ``graph`` (which is not modified)."""
    params = graph.params if params is None else params
    p = QuantPlan()
    seen: set[int] = set()

    def add(value: Value):
        if id(value) in seen or graph.is_output(value) or value.type.dtype != "float32":
            return
        seen.add(id(value))
        p.sites.append(value)
        src = value  # through a chain of pass-through ops back to a quantized value, if there is one
        while src.producer is not None and src.producer.op in PASS_THROUGH and id(src) not in p.root:
            src = src.producer.inputs[0]
        root = p.root.get(id(src), value)
        p.root[id(value)] = root
        if root is value:
            p.roots.append(value)

    ops = [n for n in graph.nodes if _weight_axis(n) is not None and n.inputs[1].name in params]
    quantized_inputs = {(id(n), 0) for n in ops}
    for node in ops:
        p.ops.append(node)
        add(node.inputs[0])
        out = node.outputs[0]
        relu = _sole_relu(graph, out)
        result = relu.outputs[0] if relu is not None else out
        if node.op != "conv2d" and not _feeds_quantized(graph, result, quantized_inputs):
            continue  # no consumer reads it as int8: a Q/DQ pair would only add rounding and nodes
        if relu is not None:
            p.absorbed_relu[id(result)] = relu
        add(result)
    return p


def _feeds_quantized(graph: Graph, value: Value, quantized_inputs: set) -> bool:
    """Whether a quantized op reads ``value`` (directly or through :data:`PASS_THROUGH` ops) as its data
    input: only then does a Q/DQ pair on it let onnxruntime keep the value int8 between integer kernels
    (a convolution's output pair is kept regardless: QLinearConv needs it, there is no float-output
    integer convolution; QGemm and MatMulIntegerToFloat give float outputs)."""
    todo, seen = [value], set()
    while todo:
        v = todo.pop()
        if id(v) in seen or graph.is_output(v):
            continue
        seen.add(id(v))
        for user, i in v.uses:
            if (id(user), i) in quantized_inputs:
                return True
            if user.op in PASS_THROUGH and i == 0:
                todo.append(user.outputs[0])
    return False


def activation_params(lo: float, hi: float, dtype: str = "uint8") -> tuple[np.float32, int]:
    """Scale and zero point of the range ``[lo, hi]`` (widened to hold 0) for ``dtype``."""
    qmin, qmax = qrange(dtype)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if dtype.startswith("u"):
        scale = (hi - lo) / (qmax - qmin)
        if scale == 0 or not np.isfinite(scale):
            return np.float32(1.0), 0
        zp = int(np.clip(np.rint(qmin - lo / scale), qmin, qmax))
        return np.float32(scale), zp
    bound = max(abs(lo), abs(hi))  # signed activations: symmetric around 0
    scale = bound / qmax
    return (np.float32(scale) if scale > 0 and np.isfinite(scale) else np.float32(1.0)), 0


def quantize_weight(w: np.ndarray, axis: int, *, bits: int = 8, reduce_range: bool = True,
                    block_size: int = 0, half: bool = False, per_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantization of ``w``: per channel along ``axis`` (``block_size`` 0), in blocks of
    ``block_size`` along ``axis``, or (``per_channel=False``) one scale for the whole tensor, returned
    once per channel all the same (the passes store it as one value, :func:`weight_scale`). Returns
    ``(q, scale)``: q int8 in [-qmax, qmax], scale float32 (``half``: float16 values, see
    :func:`half_scales`, which the passes store as float16)."""
    w = np.asarray(w, np.float32)
    qmax = (2 ** (bits - 1) - 1) if bits != 8 else (63 if reduce_range else 127)
    if block_size:
        n = w.shape[axis]
        nb = -(-n // block_size)
        pad = [(0, 0)] * w.ndim
        pad[axis] = (0, nb * block_size - n)
        wp = np.pad(np.abs(w), pad)
        shape = list(wp.shape)
        shape[axis:axis + 1] = [nb, block_size]
        amax = wp.reshape(shape).max(axis=axis + 1)
        scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
        scale = half_scales(scale) if half else scale
        full = np.take(np.repeat(scale, block_size, axis=axis), np.arange(n), axis=axis)
    else:
        other = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.abs(w).max(axis=other) if other else np.abs(w)
        if not per_channel:
            amax = np.full_like(amax, np.abs(w).max(initial=0))
        scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
        scale = half_scales(scale) if half else scale
        full = scale.reshape([-1 if i == axis else 1 for i in range(w.ndim)])
    q = np.clip(np.rint(w / full), -qmax, qmax).astype(np.int8)
    return q, scale


# ---- rewriting helpers -------------------------------------------------------------------------------

class _Emit:
    """Builds quantization nodes into ``graph`` with the provenance of the node they serve."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.b = Builder(graph, capture_locations=False)

    def const(self, array: np.ndarray, stem: str, dtype: str | None = None) -> Value:
        array = np.asarray(array)
        if dtype is not None:
            array = array.astype(_dt.to_numpy_dtype(dtype))
        if array.size <= 64:
            return self.b.emit1("constant", [], {"value": array})
        name = self.graph.fresh_param_name(stem)
        return self.graph.add_param(name, TensorType(array.shape, _dt.from_numpy_dtype(array.dtype)),
                                    np.ascontiguousarray(array), "const")

    def scale(self, scale: np.ndarray, stem: str) -> Value:
        """A float32 scale tensor; stored as float16 (and cast) when its values are float16's
        (:func:`half_scales`) and there are enough of them for the halved bytes to pay for the cast.
        onnxruntime folds the cast of a constant when it loads the model, so its integer kernels still
        see constant scales."""
        scale = np.asarray(scale, np.float32)
        if scale.size < HALF_SCALES_MIN or not np.array_equal(scale.astype(np.float16).astype(np.float32), scale):
            return self.const(scale, stem)
        return self.emit("cast", [self.const(scale, stem, "float16")], dtype="float32")

    @contextlib.contextmanager
    def at(self, node: Node | None, *, after: bool):
        """Insertion context: before/after ``node`` (None: the start of the graph), its provenance."""
        anchor = node if node is not None else self.graph.nodes.first
        scope, loc = (node.scope, node.loc) if node is not None else ("", "")
        where = self.b.inserting_after(anchor) if (after and node is not None) else self.b.inserting_before(anchor)
        with where, self.b.provenance(scope, loc):
            yield self

    def emit(self, op, inputs, **attrs) -> Value:
        return self.b.emit1(op, inputs, attrs)


def _redirect(graph: Graph, old: Value, new: Value, skip: Node | None = None) -> None:
    """Every use of ``old`` (not by ``skip``, not the graph outputs) reads ``new`` instead."""
    for user, i in list(old.uses):
        if user is not skip and user is not new.producer:
            user.set_input(i, new)


def weight_scale(em: _Emit, scale: np.ndarray, stem: str, shape: tuple | None = None) -> Value:
    """A weight's stored scale: one scalar when every channel's scale is the same (``per_channel=False``,
    or channels that happen to agree) — onnxruntime's integer kernels take a per-tensor scale on a
    faster path than a per-column one — else the per-channel vector, reshaped to ``shape`` if given."""
    scale = np.asarray(scale, np.float32)
    if scale.size and np.all(scale == scale.reshape(-1)[0]):
        return em.const(scale.reshape(-1)[0], stem + ".scale")
    return em.scale(scale.reshape(shape) if shape is not None else scale, stem + ".scale")


def _dequantized_weight(em: _Emit, graph: Graph, node: Node, index: int, axis: int, *, bits: int,
                        reduce_range: bool, block_size: int = 0, storage: str = "int8",
                        cache: dict, transpose: bool = False, per_channel: bool = True) -> tuple[Value, np.ndarray]:
    """Replace weight input ``index`` of ``node`` by dequantize_linear(int weight); returns the
    new value and the per-channel scales. ``transpose``: store the 2-D weight transposed (its
    quantization axis 1 - ``axis``) and return its dequantized transpose, *without* rewiring ``node``."""
    w = node.inputs[index]
    key = (id(w), axis, block_size, transpose)
    if key not in cache:
        q, scale = quantize_weight(graph.params[w.name], axis, bits=bits, reduce_range=reduce_range,
                                   block_size=block_size, half=True, per_channel=per_channel)
        if transpose:
            q, axis = np.ascontiguousarray(q.T), 1 - axis
        with em.at(node, after=False):
            qv = em.const(q, f"{w.name}.quantized", storage)
            sv = em.scale(scale, f"{w.name}.scale") if block_size else weight_scale(em, scale, w.name)
            zv = em.const(np.zeros(sv.type.shape), f"{w.name}.zero_point", storage)
            dq = em.emit("dequantize_linear", [qv, sv, zv], axis=axis, block_size=block_size)
        cache[key] = (dq, scale)
    dq, scale = cache[key]
    if not transpose:
        node.set_input(index, dq)
    return dq, scale


def _matmul_linear(node: Node) -> bool:
    """A linear exported as MatMul + Add (activations of rank > 2): onnxruntime fuses its quantized form
    into MatMulIntegerToFloat and adds the bias in float; rank 2 is a Gemm (QGemm takes an int32 bias)."""
    return node.op == "linear" and node.inputs[0].type.rank > 2


def _relaid_linear(em: _Emit, g: Graph, node: Node, *, reduce_range: bool, cache: dict,
                   per_channel: bool = True) -> tuple[Node, np.ndarray]:
    """A ``linear`` (transpose_b) whose export is a MatMul re-emitted with its int8 weight stored
    (in, out): no Transpose of the dequantized weight in the file or on every call."""
    dq, scale = _dequantized_weight(em, g, node, 1, 0, bits=8, reduce_range=reduce_range, cache=cache,
                                    transpose=True, per_channel=per_channel)
    with em.at(node, after=False):
        new = em.emit("linear", [node.inputs[0], dq] + list(node.inputs[2:]), **dict(node.attrs, transpose_b=False))
    g.replace_all_uses_with(node.outputs[0], new)
    g.erase(node)
    return new.producer, scale


def drop_unused_params(graph: Graph) -> list[str]:
    """Remove every parameter, buffer and constant no node reads (the float weights a quantized
    graph replaced, and those ``fold`` left behind, e.g. conv weights before a batch-norm fold):
    they would still be written to the ONNX file. Returns the removed names."""
    used = {id(v) for n in graph.walk() for v in n.inputs} | {id(v) for v in graph.outputs}
    dead = [name for name, v in graph.param_values.items() if id(v) not in used]
    for name in dead:
        graph.remove_param(name)
    return dead


def _check_ranges(ranges: dict, keys: list[str]) -> None:
    missing = [k for k in keys if k not in ranges]
    if missing:
        raise ConfigError(f"quantize_static: no calibrated range for {len(missing)} value(s) "
                          f"({', '.join(missing[:5])}{' …' if len(missing) > 5 else ''})",
                          hint="calibrate the same graph (graphforge.runtimes.calibration.calibrate)")


def _without_activation(em: _Emit, graph: Graph, node: Node) -> Node:
    """``node`` (a linear with a fused relu) re-emitted without it; the old node erased."""
    attrs = dict(node.attrs, activation="none")
    with em.at(node, after=False):
        new = em.emit("linear", list(node.inputs), **attrs)
    graph.replace_all_uses_with(node.outputs[0], new)
    graph.erase(node)
    return new.producer


# ---- the three modes ------------------------------------------------------------------------------

def quantize_static(graph: Graph, ranges: dict[str, tuple[float, float]], *, reduce_range: bool = True,
                    activation_dtype: str = "uint8", other_params: str = "int8", copy: bool = True,
                    per_channel: bool = True) -> Graph:
    """Static int8 QDQ quantization of ``graph`` with calibrated ``ranges`` (value_key → (lo, hi)
    of every ``plan(graph).roots`` value). ``other_params``: ``"int8"`` also stores the float parameters
    of float ops int8 (``quantize_params.py``), ``"float"`` keeps them. ``per_channel=False``: one
    scale per weight tensor. Returns the quantized graph (a copy unless ``copy=False``)."""
    if activation_dtype not in ("uint8", "int8"):
        raise ConfigError(f"activation_dtype must be uint8 or int8, got {activation_dtype!r}")
    g = graph.copy() if copy else graph
    original = set(g.param_values)  # (the scales made below are not "other params")
    p = plan(g)
    keys = {id(v): value_key(g, v) for v in p.roots}
    _check_ranges(ranges, list(keys.values()))
    qparams = {}
    for site in p.sites:
        lo, hi = ranges[keys[id(p.root[id(site)])]]
        if id(site) in p.absorbed_relu or _is_relu_linear(site):
            lo = 0.0
        qparams[id(site)] = activation_params(lo, hi, activation_dtype)
    em = _Emit(g)
    # 1. QDQ pairs on the activations
    dequantized: dict[int, Value] = {}
    for site in p.sites:
        scale, zp = qparams[id(site)]
        with em.at(site.producer, after=True):
            s = em.const(np.asarray(scale, np.float32), "act.scale")
            z = em.const(np.asarray(zp), "act.zero_point", activation_dtype)
            relu = p.absorbed_relu.get(id(site))
            # a dropped relu: quantize its input, the uint8 range starting at 0 clips in its place
            source = relu.inputs[0] if relu is not None and activation_dtype == "uint8" else site
            q = em.emit("quantize_linear", [source, s, z], axis=1, block_size=0)
            dq = em.emit("dequantize_linear", [q, s, z], axis=1, block_size=0)
        _redirect(g, site, dq, skip=q.producer)
        dequantized[id(site)] = dq
        if relu is not None and activation_dtype == "uint8" and not relu.outputs[0].uses \
                and not g.is_output(relu.outputs[0]):
            g.erase(relu)
    # 2. weights (and int32 biases) of the quantized ops
    cache: dict = {}
    for node in list(p.ops):
        if node.op == "linear" and node.attrs.get("activation") == "relu" and activation_dtype == "uint8" \
                and id(node.outputs[0]) in dequantized:
            node = _without_activation(em, g, node)
        index, axis = _weight_axis(node)
        if _matmul_linear(node) and node.attrs.get("transpose_b", True):
            node, w_scale = _relaid_linear(em, g, node, reduce_range=reduce_range, cache=cache,
                                           per_channel=per_channel)
        else:
            _, w_scale = _dequantized_weight(em, g, node, index, axis, bits=8, reduce_range=reduce_range,
                                             cache=cache, per_channel=per_channel)
        x = node.inputs[0]
        # an int32 bias only where onnxruntime's integer kernel takes one (QLinearConv, QGemm): a
        # MatMul's bias is added in float, where an int32 bias would cost a scale per channel and a node
        if len(node.inputs) == 3 and x.producer is not None and x.producer.op == "dequantize_linear" \
                and not _matmul_linear(node):
            _quantize_bias(em, g, node, x, w_scale)
    drop_unused_params(g)
    quantize_other_params(g, mode=other_params, names=original)
    g.verify()
    return g


def _is_relu_linear(site: Value) -> bool:
    n = site.producer
    return n is not None and n.op == "linear" and n.attrs.get("activation") == "relu"


def _quantize_bias(em: _Emit, g: Graph, node: Node, x_dq: Value, w_scale: np.ndarray) -> None:
    b = node.inputs[2]
    out_ch = w_scale.shape[0]
    if b.kind not in ("param", "const") or b.name not in g.params or tuple(b.type.shape) != (out_ch,):
        return
    x_scale = _constant_of(g, x_dq.producer.inputs[1])
    if x_scale is None:
        return
    scale = (np.float32(x_scale) * w_scale).astype(np.float32)
    bias = g.params[b.name].astype(np.float32)
    q = np.rint(bias / np.where(scale > 0, scale, 1.0))
    if np.abs(q).max(initial=0) >= 2 ** 31 - 1:
        return  # keep a bias that int32 at this scale cannot hold in float
    with em.at(node, after=False):
        qv = em.const(q.astype(np.int32), f"{b.name}.quantized")
        sv = em.const(scale, f"{b.name}.scale")
        dq = em.emit("dequantize_linear", [qv, sv], axis=0, block_size=0)
    node.set_input(2, dq)


def _constant_of(g: Graph, v: Value):
    if v.producer is not None and v.producer.op == "constant":
        return np.asarray(v.producer.attrs["value"])
    if v.kind in ("param", "const") and v.name in g.params:
        return g.params[v.name]
    return None


def quantize_dynamic(graph: Graph, *, reduce_range: bool = True, other_params: str = "int8",
                     copy: bool = True, per_channel: bool = True) -> Graph:
    """Dynamic int8 quantization: int8 weights, activations quantized at run time, integer products
    (``matmul_integer`` / ``conv_integer``) rescaled to float; ``other_params`` and ``per_channel`` as
    in :func:`quantize_static`. An activation several ops read (a Transformer's q/k/v projections)
    is quantized once. Returns the new graph."""
    g = graph.copy() if copy else graph
    original = set(g.param_values)  # (the scales made below are not "other params")
    em = _Emit(g)
    quantized: dict[int, tuple] = {}  # activation id -> its dynamic_quantize_linear results
    for node in list(g.nodes):
        wa = _weight_axis(node)
        if wa is None or node.inputs[1].name not in g.params:
            continue
        index, axis = wa
        w = node.inputs[index]
        q, scale = quantize_weight(g.params[w.name], axis, bits=8, reduce_range=reduce_range, half=True,
                                   per_channel=per_channel)
        if node.op == "linear" and axis == 0:
            q = np.ascontiguousarray(q.T)  # matmul_integer takes B as (in, out)
        out_ch = scale.shape[0]
        with em.at(node, after=False):
            x = node.inputs[0]
            if id(x) not in quantized:  # (nodes run in order: the first reader's site dominates the others)
                quantized[id(x)] = tuple(em.b.emit("dynamic_quantize_linear", [x]))
            xq, xs, xz = quantized[id(x)]
            wq = em.const(q, f"{w.name}.quantized", "int8")
            wz = em.const(np.zeros(()), f"{w.name}.zero_point", "int8")
            if node.op == "conv2d":
                acc = em.emit("conv_integer", [xq, wq, xz, wz], **{k: node.attrs[k] for k in
                                                                    ("strides", "pads", "dilations", "groups")})
                ws = weight_scale(em, scale, w.name, (out_ch, 1, 1))
            else:
                acc = em.emit("matmul_integer", [xq, wq, xz, wz])
                ws = weight_scale(em, scale, w.name)
            y = em.emit("mul", [em.emit("cast", [acc], dtype="float32"), em.emit("mul", [xs, ws])])
            if len(node.inputs) == 3:
                b = node.inputs[2]
                if node.op == "conv2d":
                    b = em.emit("reshape", [b], shape=[out_ch, 1, 1])
                y = em.emit("add", [y, b])
            act = node.attrs.get("activation", "none") if node.op == "linear" else "none"
            if act != "none":
                from graphforge.ops.linalg import activation_op

                op, act_attrs = activation_op(act)
                y = em.emit(op, [y], **act_attrs)
        if y.type != node.outputs[0].type:
            raise ConfigError(f"quantize_dynamic: the rewrite of {node.op} at {node.provenance()} gives "
                              f"{y.type}, expected {node.outputs[0].type}")
        g.replace_all_uses_with(node.outputs[0], y)
        g.erase(node)
    drop_unused_params(g)
    quantize_other_params(g, mode=other_params, names=original)
    g.verify()
    return g


def quantize_weights_int4(graph: Graph, *, block_size: int = 32, copy: bool = True) -> Graph:
    """Weight-only 4-bit quantization (blocks of ``block_size`` along the input axis; per output
    channel for conv2d). Returns the new graph."""
    if block_size < 0:
        raise ConfigError(f"block_size must be >= 0, got {block_size}")
    g = graph.copy() if copy else graph
    em = _Emit(g)
    cache: dict = {}
    for node in list(g.nodes):
        wa = _weight_axis(node)
        if wa is None or node.inputs[1].name not in g.params:
            continue
        index, out_axis = wa
        if node.op == "conv2d" or not block_size:
            axis, block = out_axis, 0
        else:
            axis, block = 1 - out_axis, block_size  # blocks run along the input features
        _dequantized_weight(em, g, node, index, axis, bits=4, reduce_range=False, block_size=block,
                            storage=INT4_STORAGE, cache=cache)
    drop_unused_params(g)
    g.verify()
    return g


@register_pass("quantize_dynamic")
def _quantize_dynamic_pass(graph: Graph):
    n = len(graph.nodes)
    out = quantize_dynamic(graph, copy=False)
    return out, len(out.nodes) != n


@register_pass("quantize_int4")
def _quantize_int4_pass(graph: Graph):
    before = set(graph.params)
    out = quantize_weights_int4(graph, copy=False)
    return out, set(out.params) != before
