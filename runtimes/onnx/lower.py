"""The ONNX lowering table and the per-export emitter every lowering writes through.

A lowering is ``fn(ctx, args, attrs) -> list[str]``: ``args`` are the ONNX tensor names of the
node's inputs, the result the names of its outputs. ``ctx`` is the :class:`Emitter` of the export in
progress: ``ctx.op("MatMul", [a, b])`` appends a NodeProto (named after the graphforge node's scope,
its ``doc_string`` the provenance), ``ctx.const(array)`` adds an initializer, ``ctx.shape(dims)``
gives a 1-D int64 tensor for a shape that may hold symbolic dims (computed at run time from the
graph inputs with Shape/Div/Mul/Concat). ``ctx.in_types``/``ctx.out_types`` are the node's types
(half types already raised to float32 for compute ops, see :data:`DTYPE_GENERIC`).

Shape-moving helpers keep the graph tight: ``ctx.reshape`` uses ``Flatten`` when the result is the
rank-2 collapse at an axis, else a *constant* target shape where it can (``0`` copies the input dim
at the same position, one ``-1`` when every other dim is static), computing it at run time only when
neither works; ``ctx.expand`` writes ``1`` for every dim the input already has; ``ctx.transpose``
folds a Transpose of a Transpose into one. ``ctx.native("Attention")`` says whether to emit a
composite op natively (see ``kernels.native_policy``). Nodes left without a use (e.g. the inner
Transpose of a folded pair) are dropped by the exporter.

Register a lowering with ``@lowers("relu")``; ``@lowers("layer_norm", when=fn)`` takes only the nodes
``fn(node, emitter)`` accepts, and the exporter's ``decompose`` pass replaces the others by their
registry decomposition before lowering starts (a lowering never decomposes its node itself). A
lowering may lower a node through another op's lowering with ``ctx.lower_as(op, args, attrs)``. A lowering that cannot express its node at the chosen
opset raises :class:`NotExpressible`; the exporter collects every such node before it reports.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import TensorProto, helper

from graphforge import dtypes as _dt
from graphforge.errors import ExportError
from graphforge.ir.dims import dim_monomial, dim_product, dim_sub, dim_symbols, dim_tree

from .._registry import lowering_table
from .kernels import native_policy

__all__ = ["lowers", "LOWERINGS", "Emitter", "has_lowering", "NotExpressible", "ONNX_DTYPES", "onnx_dtype",
           "DTYPE_GENERIC", "HALF", "reduce"]

LOWERINGS, lowers, has_lowering = lowering_table()
# narrow floats that compute ops see as float32 (casts around them), like the reference computes them;
# onnxruntime has no kernels beyond Cast for the float8 types
HALF = ("float16", "bfloat16") + _dt.FLOAT8_DTYPES + _dt.FLOAT4_DTYPES + (_dt.E8M0,)
# ops that only move data: they run on any dtype, so half tensors are not raised to float32 around them
DTYPE_GENERIC = {"reshape", "flatten", "squeeze", "unsqueeze", "transpose", "concat", "split", "slice",
                 "broadcast_to", "cast", "constant", "dim_size", "arange"}

ONNX_DTYPES = {
    "float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "float16": TensorProto.FLOAT16,
    "bfloat16": TensorProto.BFLOAT16, "int64": TensorProto.INT64, "int32": TensorProto.INT32,
    "int16": TensorProto.INT16, "int8": TensorProto.INT8, "uint8": TensorProto.UINT8,
    "uint32": TensorProto.UINT32, "bool": TensorProto.BOOL,
    "uint16": TensorProto.UINT16, "uint64": TensorProto.UINT64, "int4": TensorProto.INT4,
    "uint4": TensorProto.UINT4, "float8e4m3fn": TensorProto.FLOAT8E4M3FN,
    "float8e4m3fnuz": TensorProto.FLOAT8E4M3FNUZ, "float8e5m2": TensorProto.FLOAT8E5M2,
    "float8e5m2fnuz": TensorProto.FLOAT8E5M2FNUZ, "int2": TensorProto.INT2, "uint2": TensorProto.UINT2,
    "float4e2m1": TensorProto.FLOAT4E2M1, "float8e8m0": TensorProto.FLOAT8E8M0,
    "string": TensorProto.STRING,
}


def onnx_dtype(dtype: str) -> int:
    try:
        return ONNX_DTYPES[dtype]
    except KeyError:
        raise ExportError(f"dtype {dtype} has no ONNX equivalent") from None


class NotExpressible(Exception):
    """Raised by a lowering when the chosen opset cannot express the node (collected, then reported)."""


def tensor_proto(array: np.ndarray, name: str, dtype: str | None = None) -> onnx.TensorProto:
    """An ONNX tensor from a NumPy array (raw little-endian bytes; bfloat16 via its uint16 bits)."""
    array = np.asarray(array)
    dtype = dtype or _dt.from_numpy_dtype(array.dtype)
    array = np.array(array, dtype=_dt.to_numpy_dtype(dtype), order="C")  # (ascontiguousarray makes 0-d 1-d)
    if dtype in _dt.PACKED_BITS:  # several values per byte (4- and 2-bit types): onnx's own packing
        return onnx.numpy_helper.from_array(array, name)
    if dtype == _dt.STRING:  # string_data holds UTF-8 bytes, one entry per element
        return onnx.helper.make_tensor(name, TensorProto.STRING, array.shape,
                                       [str(v).encode("utf-8") for v in array.reshape(-1)])
    t = onnx.TensorProto()
    t.name = name
    t.data_type = onnx_dtype(dtype)
    t.dims.extend(array.shape)
    t.raw_data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    return t


def _factor(dim) -> tuple[int, list[str]] | None:
    """``"4*batch*seq"`` -> (4, ["batch", "seq"]); None for other expressions (``seq-1``)."""
    return dim_monomial(dim)


class _Typed:
    def __init__(self, type_):
        self.type = type_


class _Within:
    """A stand-in node for an op lowered inside another node's lowering (``Emitter.lower_as``)."""

    def __init__(self, op: str, attrs: dict, outer, in_types, out_types):
        self.op, self.attrs = op, dict(attrs)
        self.scope, self.loc = (outer.scope, outer.loc) if outer is not None else ("", "")
        self.inputs = [_Typed(t) for t in in_types]  # what ``when=`` conditions read
        self.outputs = [_Typed(t) for t in out_types]

    def provenance(self) -> str:
        return " @ ".join(p for p in (self.scope, self.loc) if p)


class Emitter:
    """Collects the NodeProtos and initializers of one export; see the module docstring."""

    def __init__(self, opset: int, reserved: Sequence[str] = (), native_ops=None):
        self.opset = opset
        self._native = native_policy(native_ops)
        self.native_ops = native_ops  # None: the default rule (per-case choices may apply, recurrent.py)
        self._producers: dict[str, onnx.NodeProto] = {}
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken = set(reserved)
        self._ids = itertools.count()
        self._node_ids = itertools.count()
        self._consts: dict[tuple, str] = {}
        self._dims: dict[str, str] = {}
        self._sources: dict[str, tuple[str, int, object]] = {}
        self.node = None
        self.in_types: list = []
        self.out_types: list = []
        self.scope = ""
        self.loc = ""
        self.args: list[str] = []
        # parameters stored as initializers (name -> (array, dtype)), so lowerings may store a
        # re-laid-out copy instead of transposing a weight on every inference
        self.stored_params: dict[str, tuple[np.ndarray, str]] = {}
        self.transposed_params: dict[str, str] = {}  # param name -> its pre-transposed initializer
        self.relaid_params: set[str] = set()  # params a lowering stored re-laid-out (recurrent.py)
        # int32 tensors that equal a float32 tensor exactly (name -> float32 name; quantize.py's
        # conv_integer): a cast of one to float32 reads the float32 tensor (elementwise.py)
        self.exact_float_of: dict[str, str] = {}

    def native(self, op_type: str) -> bool:
        """Emit the composite ``op_type`` as one native node at this opset (else decompose it)?"""
        return self._native(op_type, self.opset)

    def producer(self, name: str):
        """The NodeProto emitted so far whose output is ``name`` (None for inputs and initializers)."""
        return self._producers.get(name)

    def lower_as(self, op: str, args: Sequence[str], attrs: dict, in_types=None, out_types=None) -> list[str]:
        """Lower ``op`` (registry name) on ``args`` with its own lowering, inside the current node
        (its provenance; types default to the current node's result types): how ``linear`` applies
        its fused activation without a second copy of the activation's lowering."""
        in_types = list(self.out_types[:1] * len(args) if in_types is None else in_types)
        out_types = list(self.out_types[:1] if out_types is None else out_types)
        node = _Within(op, attrs, self.node, in_types, out_types)
        if not LOWERINGS.can_lower(node, self):
            raise NotExpressible(f"{op} cannot be lowered here")
        saved = self.enter(node, in_types, out_types)
        try:
            return list(LOWERINGS[op](self, list(args), attrs))
        finally:
            self.leave(saved)

    # ---- names and provenance -----------------------------------------------------------------
    def fresh(self, stem: str = "t") -> str:
        while True:
            name = f"{stem}{next(self._ids)}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def transposed_param(self, name: str) -> str | None:
        """The transpose of the stored 2-D parameter ``name`` as an initializer of its own
        (``<name>.T``, made once per export), or None when ``name`` is not a stored parameter.

        A Transpose of a weight would otherwise run on every call unless the runtime folds it
        (onnxruntime does only with its graph optimisations on); torch.onnx stores such weights
        pre-transposed too. The original initializer is dropped when nothing else reads it."""
        entry = self.stored_params.get(name)
        if entry is None or entry[0].ndim != 2:
            return None
        if name not in self.transposed_params:
            array, dtype = entry
            tname = self.reserve(f"{name}.T")
            self.initializers.append(tensor_proto(np.ascontiguousarray(array.T), tname, dtype))
            self.transposed_params[name] = tname
        return self.transposed_params[name]

    def reserve(self, name: str) -> str:
        """``name`` itself if free, else ``name_1``, ``name_2``…"""
        candidate, i = name, 0
        while candidate in self._taken:
            i += 1
            candidate = f"{name}_{i}"
        self._taken.add(candidate)
        return candidate

    def enter(self, node, in_types, out_types):
        saved = (self.node, self.in_types, self.out_types, self.scope, self.loc)
        self.node, self.in_types, self.out_types = node, list(in_types), list(out_types)
        self.scope, self.loc = node.scope, node.loc
        return saved

    def leave(self, saved):
        self.node, self.in_types, self.out_types, self.scope, self.loc = saved

    # ---- emitting -------------------------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[str], outputs: int | Sequence[str] = 1, **attrs):
        """Append one ONNX node; returns its output name (or the list of them if ``outputs`` != 1)."""
        outs = [self.fresh() for _ in range(outputs)] if isinstance(outputs, int) else list(outputs)
        k = next(self._node_ids)
        name = f"{self.scope}/{op_type}_{k}" if self.scope else f"{op_type}_{k}"
        doc = " @ ".join(p for p in (self.scope, self.loc) if p)
        attrs = {key: v for key, v in attrs.items() if v is not None}
        node = helper.make_node(op_type, list(inputs), outs, name=name, doc_string=doc or None, **attrs)
        self.nodes.append(node)
        for out in outs:
            self._producers[out] = node
        return outs[0] if isinstance(outputs, int) and outputs == 1 else outs

    def const(self, array, dtype: str | None = None) -> str:
        """An initializer holding ``array`` (small ones shared between uses)."""
        array = np.asarray(array)
        dtype = dtype or _dt.from_numpy_dtype(array.dtype)
        array = array.astype(_dt.to_numpy_dtype(dtype), copy=False)
        key = None
        if array.size <= 256:
            # (an object array's bytes are pointers: string constants are keyed by their text)
            key = (dtype, array.shape, tuple(map(str, array.flat)) if dtype == _dt.STRING else array.tobytes())
            if key in self._consts:
                return self._consts[key]
        name = self.fresh("const")
        self.initializers.append(tensor_proto(array, name, dtype))
        if key is not None:
            self._consts[key] = name
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64))

    def scalar(self, value, dtype: str) -> str:
        return self.const(np.asarray(value, dtype=_dt.to_numpy_dtype(dtype)), dtype)

    def cast(self, x: str, dtype: str, saturate: bool = True, round_mode: str = "up") -> str:
        extra = {}
        if not saturate and dtype in _dt.FLOAT8_DTYPES + (_dt.E8M0,):
            extra["saturate"] = 0
        if round_mode != "up" and dtype == _dt.E8M0:
            extra["round_mode"] = round_mode
        return self.op("Cast", [x], to=onnx_dtype(dtype), **extra)

    # ---- symbolic dims ------------------------------------------------------------------------------
    def bind_symbols(self, inputs) -> None:
        """Note where each symbolic dim can be read at run time (graph input, axis, static divisor)."""
        pending = []
        for value in inputs:
            for axis, dim in enumerate(value.type.shape):
                if isinstance(dim, str):
                    pending.append((value.name, axis, dim))
        changed = True
        while changed:
            changed = False
            for name, axis, dim in pending:
                factored = _factor(dim)
                if factored is None:  # an input dim like seq+2: seq = size - 2 once the rest is known
                    unknown = [s for s in dim_symbols(dim) if s not in self._sources]
                    if len(unknown) == 1:
                        rest = dim_sub(dim, unknown[0])
                        if unknown[0] not in dim_symbols(rest):
                            self._sources[unknown[0]] = (name, axis, ("offset", rest))
                            changed = True
                    continue
                coef, syms = factored
                unknown = [s for s in set(syms) if s not in self._sources]
                if len(unknown) == 1 and syms.count(unknown[0]) == 1:
                    rest = list(syms)
                    rest.remove(unknown[0])
                    self._sources[unknown[0]] = (name, axis, (coef, rest))
                    changed = True

    def _symbol(self, sym: str) -> str:
        if sym in self._dims:
            return self._dims[sym]
        if sym not in self._sources:
            raise ExportError(f"symbolic dim {sym!r} is not a dim of any graph input, so its value is not "
                              "known at run time", hint="give the graph an input whose shape holds it")
        name, axis, (coef, rest) = self._sources[sym]
        saved = (self.scope, self.loc)
        self.scope, self.loc = "", ""
        out = self.op("Shape", [name], start=axis, end=axis + 1)
        if coef == "offset":
            out = self.op("Sub", [out, self.dim(rest)])
        elif coef != 1 or rest:
            out = self.op("Div", [out, self.dim(dim_product([coef] + rest))])
        self.scope, self.loc = saved
        self._dims[sym] = out
        return out

    def dim(self, dim) -> str:
        """A 1-element int64 tensor holding ``dim`` (static or symbolic) at run time."""
        if isinstance(dim, int):
            return self.ints([dim])
        if dim in self._dims:
            return self._dims[dim]
        factored = _factor(dim)
        if factored is None:  # an expression: Add/Mul/Div/Max/Min over the symbols (ir.dims.dim_tree)
            out = self._dim_tree(dim_tree(dim))
        else:
            coef, syms = factored
            out = None
            for s in syms:
                t = self._symbol(s)
                out = t if out is None else self.op("Mul", [out, t])
            if coef != 1:
                out = self.op("Mul", [out, self.ints([coef])])
        self._dims[dim] = out
        return out

    def _dim_tree(self, tree) -> str:
        kind = tree[0]
        if kind == "int":
            return self.ints([tree[1]])
        if kind == "sym":
            return self._symbol(tree[1])
        if kind == "floordiv":  # the numerator of a canonical floor is >= 0: Div's truncation is floor
            return self.op("Div", [self._dim_tree(tree[1]), self.ints([tree[2]])])
        parts = tree[1]
        if kind in ("max", "min"):
            return self.op(kind.capitalize(), [self._dim_tree(p) for p in parts])
        out = self._dim_tree(parts[0])
        for p in parts[1:]:
            if kind == "add" and p[0] == "int" and p[1] < 0:
                out = self.op("Sub", [out, self.ints([-p[1]])])
            else:
                out = self.op("Add" if kind == "add" else "Mul", [out, self._dim_tree(p)])
        return out

    def scalar_dim(self, dim, dtype: str = "int64") -> str:
        """A 0-d tensor of ``dtype`` holding ``dim`` at run time."""
        if isinstance(dim, int):
            return self.scalar(dim, dtype)
        out = self.op("Reshape", [self.dim(dim), self.ints([])])
        return out if dtype == "int64" else self.cast(out, dtype)

    def shape(self, dims) -> str:
        """A 1-D int64 tensor with the shape ``dims`` (constant when every dim is static)."""
        dims = list(dims)
        if all(isinstance(d, int) for d in dims):
            return self.ints(dims)
        parts, run = [], []
        for d in dims:
            if isinstance(d, int):
                run.append(d)
                continue
            if run:
                parts.append(self.ints(run))
                run = []
            parts.append(self.dim(d))
        if run:
            parts.append(self.ints(run))
        return parts[0] if len(parts) == 1 else self.op("Concat", parts, axis=0)

    def reshape(self, x: str, in_shape, out_shape) -> str:
        """``x`` (of ``in_shape``) reshaped to ``out_shape``, with as little run-time shape math as possible."""
        ins, outs = list(in_shape), list(out_shape)
        if all(isinstance(d, int) for d in outs):
            extra = {"allowzero": 1} if 0 in outs else {}
            return self.op("Reshape", [x, self.ints(outs)], **extra)
        if len(outs) == 2:
            for axis in range(len(ins) + 1):
                if dim_product(ins[:axis]) == outs[0] and dim_product(ins[axis:]) == outs[1]:
                    return self.op("Flatten", [x], axis=axis)
        if 0 not in outs:  # (allowzero=0 reads a literal 0 as "copy", so no static 0 may appear)
            spec = [d if isinstance(d, int) else 0 if i < len(ins) and ins[i] == d else None
                    for i, d in enumerate(outs)]
            open_ = [i for i, d in enumerate(spec) if d is None]
            if not open_:
                return self.op("Reshape", [x, self.ints(spec)])
            # -1 only beside static dims: a copied dim may be 0 at run time, and -1 cannot be
            # inferred next to a zero
            if len(open_) == 1 and all(isinstance(d, int) for i, d in enumerate(outs) if i != open_[0]):
                spec[open_[0]] = -1
                return self.op("Reshape", [x, self.ints(spec)])
        # a run-time dim may be 0: allowzero=1 keeps it 0 instead of copying the input's dim
        return self.op("Reshape", [x, self.shape(outs)], allowzero=1)

    def expand(self, x: str, in_shape, out_shape) -> str:
        """``x`` (of ``in_shape``) broadcast to ``out_shape``: ``1`` keeps each dim the input already has."""
        ins, outs = list(in_shape), list(out_shape)
        if ins == outs:
            return x
        lead = len(outs) - len(ins)
        spec = [1 if not isinstance(d, int) and i >= lead and ins[i - lead] == d else d for i, d in enumerate(outs)]
        return self.op("Expand", [x, self.shape(spec)])

    def transpose(self, x: str, perm) -> str:
        """``Transpose(x, perm)``; a Transpose of a Transpose becomes one (the inner one dies if unused)."""
        perm = [int(p) for p in perm]
        inner = self.producer(x)
        first = [a for a in inner.attribute if a.name == "perm"] if inner is not None else []
        if inner is not None and inner.op_type == "Transpose" and first:
            first = list(helper.get_attribute_value(first[0]))
            perm = [first[p] for p in perm]
            x = inner.input[0]
        if perm == list(range(len(perm))):
            return x
        return self.op("Transpose", [x], perm=perm)

    def numel(self, dims) -> str:
        """A 0-d int64 tensor with the product of ``dims``."""
        return self.op("Reshape", [self.dim(dim_product(list(dims)) if dims else 1), self.ints([])])


def reduce(ctx: Emitter, op_type: str, x: str, axes, keepdims: bool) -> str:
    """A Reduce* node; axes moved from attribute to input at opset 18 (ReduceSum at 13)."""
    if axes is not None and len(axes) == 0:
        return x
    keep = int(bool(keepdims))
    if axes is None:
        return ctx.op(op_type, [x], keepdims=keep)
    if op_type == "ReduceSum" or ctx.opset >= 18:
        return ctx.op(op_type, [x, ctx.ints(axes)], keepdims=keep)
    return ctx.op(op_type, [x], keepdims=keep, axes=list(axes))
