"""ONNX → graphforge IR: validate an (untrusted) ONNX model and rebuild it as a typed Graph.

Every ONNX op type has one importer function in :data:`IMPORTERS` (in the module named like the graphforge op family it maps onto: ``elementwise.py``, ``nn_ops.py``…). Values known at
import time (integer initializers, ``Constant`` nodes, ``Shape`` of static shapes and anything computed
only from those) are kept as NumPy arrays and folded with onnx's own reference evaluator, so shape
arithmetic (Shape → Gather → Concat → Reshape) disappears at import. Float initializers become
trainable params, integer/bool ones ``const`` params. Node names are kept as ``Node.scope``.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Callable

import numpy as np
import onnx
from onnx import numpy_helper

from graphforge.dtypes import from_numpy_dtype
from graphforge.errors import GraphforgeError, LoadError, ShapeError, UnsupportedOpError
from graphforge.ir.dims import check_dim, dim_sub, dim_symbols, is_dim_text
from graphforge.ir.graph import Graph, Value
from graphforge.ir.types import TensorType
from graphforge.trace.builder import Builder

from .._registry import registrar
from .budget import ImportBudget, nbytes_of, resolve_max_constant_bytes
from .external import load_model_checked

__all__ = ["from_onnx", "IMPORTERS", "importer", "ImportContext", "Known", "supported_op_types",
           "NeedsConstantError", "attrs_of", "unsupported", "float_input", "MIN_OPSET", "max_import_opset",
           "import_nodes", "all_nodes", "onnx_dtype", "from_onnx_structured"]


class NeedsConstantError(UnsupportedOpError):
    """An input that graphforge needs at import time (a shape, axes, pads…) is only known at run time.

    ``tensor`` names the ONNX tensor; when it is a graph input, ``from_onnx(..., constant_inputs=)``
    (or the onnx backend, which specialises on the values it is run with) resolves it."""

    def __init__(self, message: str, tensor: str = "", **kw):
        self.tensor = tensor
        super().__init__(message, **kw)

class Known:
    """An importer result that is both a graph Value and a value known at import time.

    Consumers that need a constant (a Reshape shape, Slice starts…) read ``array``; everything else
    uses ``value``. When only the constant is consumed, the node producing ``value`` is dead and is
    removed at the end of the import."""

    __slots__ = ("value", "array")

    def __init__(self, value: Value, array):
        self.value = value
        self.array = np.asarray(array)


IMPORTERS: dict[str, Callable[["ImportContext", onnx.NodeProto], list[Any]]] = {}
_NAME = re.compile(r"[^\w.\-/]")
_SMALL = 64  # constants up to this many elements become `constant` nodes, larger ones const params
# ops never folded at import time even on constant inputs (random or side-effecting)
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
            "Bernoulli"}
# ops whose importer handles constant inputs itself (e.g. an integer Range stays an `arange` node)
_OWN_FOLD = {"Range"}


importer = registrar(IMPORTERS)
"""``@importer("Relu", ...)``: register the decorated function as the importer of those ONNX op types."""


def supported_op_types() -> list[str]:
    _load_tables()
    return sorted(IMPORTERS)


def _load_tables():
    # One module per graphforge/ops family; importing them fills IMPORTERS.
    from . import creation, elementwise, linalg, nn_attention, nn_ops, nn_resize, reduction, shape_ops  # noqa: F401
    from . import recurrent  # noqa: F401  (LSTM/GRU/RNN)
    from . import control_flow  # noqa: F401  (If, Loop, Scan)
    from . import math_ops  # noqa: F401
    from . import quantize  # noqa: F401  (quantized ops)
    from . import contraction, selection  # noqa: F401  (Einsum; TopK, MaxUnpool)
    from . import data_dependent  # noqa: F401  (NonZero, Compress, Unique, NonMaxSuppression)
    from . import sequences  # noqa: F401  (Sequence*, Optional*; wraps Identity, so after elementwise)
    from . import linalg_det  # noqa: F401  (Det)
    from . import signal_misc  # noqa: F401  (Hann/Hamming/BlackmanWindow, GlobalLpPool, ReverseSequence)
    from . import strings  # noqa: F401  (StringNormalizer, StringConcat, StringSplit, RegexFullMatch)
    from . import training_gradient  # noqa: F401  (ai.onnx.preview.training Gradient)
    from . import ml_label_encoder  # noqa: F401  (ai.onnx.ml LabelEncoder)
    from . import vision  # noqa: F401  (GridSample, AffineGrid, RoiAlign, MaxRoiPool, DeformConv, Col2Im)
    from . import contrib  # noqa: F401  (onnxruntime com.microsoft kernels)


# ONNX attributes that are flags: any other value than 0/1 means different things to different
# runtimes (onnxruntime reads keepdims=-3 as false, onnx's reference as true), so it is refused
_FLAGS = {"keepdims", "noop_with_empty_axes", "select_last_index", "exclusive", "reverse", "upper", "ceil_mode",
          "count_include_pad", "is_causal", "transA", "transB", "largest", "sorted", "antialias"}


def attrs_of(node: onnx.NodeProto) -> dict:
    """A node's attributes as Python values (strings decoded); a flag attribute must be 0 or 1."""
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            try:
                v = v.decode()
            except UnicodeDecodeError:
                raise LoadError(f"{node.op_type} node {node.name!r}: attribute {a.name!r} is not UTF-8 text") from None
        if a.name in _FLAGS and (not isinstance(v, int) or v not in (0, 1)):
            raise LoadError(f"{node.op_type} node {node.name!r}: attribute {a.name}={v!r} must be 0 or 1")
        out[a.name] = v
    return out


def unsupported(node, why: str):
    """Raise the typed error for an ONNX node graphforge cannot express, naming the node."""
    raise UnsupportedOpError(f"{node.op_type} node {node.name!r}: {why}", op=node.op_type)


def float_input(ctx, node):
    """The node's first input and its dtype (for importers composed of float math)."""
    x = ctx.input(node, 0)
    return x, x.type.dtype


def onnx_dtype(elem_type: int) -> str:
    try:
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
        return from_numpy_dtype(np.dtype(np_dtype))
    except Exception as exc:  # noqa: BLE001
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else elem_type
        raise UnsupportedOpError(f"ONNX tensor element type {name} has no graphforge dtype") from exc


class ImportContext:
    """State of one import: the graph, a builder, ONNX name → Value or static ndarray, opset."""

    def __init__(self, graph: Graph, opset: int, budget: ImportBudget | None = None):
        self.graph = graph
        self.budget = budget or ImportBudget(resolve_max_constant_bytes())
        self.builder = Builder(graph, capture_locations=False)
        self.opset = opset
        self.values: dict[str, Value] = {}
        self.consts: dict[str, np.ndarray] = {}
        self._sym = 0
        self.node_name = ""
        self.fold = True  # fold nodes whose inputs are all known at import time (from_onnx(fold=))
        self.input_symbols: set[str] = set()  # plain-identifier dim_params of the graph inputs
        self.recorded_scopes: dict[str, str] = {}  # first output -> scope, from a graphforge provenance table

    # ---- the import budget (see budget.py) -------------------------------------------------------
    def afford(self, shape, itemsize: int) -> bool:
        """True (and charged) when a ``shape`` array of ``itemsize`` bytes fits the import budget."""
        return self.budget.afford(nbytes_of(shape, itemsize))

    def require(self, shape, itemsize: int, what: str) -> None:
        """Charge a ``shape`` array or raise :class:`LoadError` naming this node and the size."""
        self.budget.require(nbytes_of(shape, itemsize), what, f"ONNX node {self.node_name!r}")

    # ---- reading inputs ------------------------------------------------------------------------
    def has(self, node: onnx.NodeProto, i: int) -> bool:
        return i < len(node.input) and node.input[i] != ""

    def const(self, name: str) -> np.ndarray | None:
        """The static value of ONNX tensor ``name`` or None when it is only known at run time."""
        if name in self.consts:
            return self.consts[name]
        v = self.values.get(name)
        if isinstance(v, Value) and v.kind == "const" and v.name in self.graph.params:
            return self.graph.params[v.name]
        return None

    def need_const(self, node: onnx.NodeProto, i: int, what: str, *, dims: bool = False) -> np.ndarray:
        """The import-time value of input ``i``; ``dims=True``: the caller also takes a dims array
        (a shape computed from symbolic input dims, see ``shape_values``)."""
        arr = self.const(node.input[i])
        if arr is not None and arr.dtype == object and not dims:
            arr = None
        v = self.values.get(node.input[i])
        if arr is None and v is not None and v.kind == "param":
            # a float initializer used as an attribute (a ratio, a clip bound): its stored value is fixed
            # at import time (const() does not do this, so weights are never folded away)
            arr = self.graph.params[v.name]
        if arr is None:
            raise NeedsConstantError(f"{node.op_type} node {node.name!r}: input {i} ({what}) must be a "
                                     "constant known at import time", tensor=node.input[i], op=node.op_type)
        return arr

    def value(self, name: str) -> Value:
        if name in self.values:
            return self.values[name]
        if name in self.consts:
            v = self.materialize(self.consts[name], name)
            self.values[name] = v
            return v
        raise LoadError(f"ONNX tensor {name!r} is used before it is defined")

    def materialize(self, arr: np.ndarray, hint: str = "const") -> Value:
        arr = np.asarray(arr)
        if arr.dtype == object:  # a shape tensor holding symbolic dims: computed at run time
            from .shape_values import materialize_dims
            return materialize_dims(self, arr)
        if arr.size <= _SMALL:
            return self.emit("constant", [], value=arr)
        pname = self.graph.fresh_param_name(sanitize(hint) or "const")
        return self.graph.add_param(pname, TensorType(arr.shape, from_numpy_dtype(arr.dtype)), arr, "const")

    def input(self, node: onnx.NodeProto, i: int) -> Value:
        v = self.value(node.input[i])
        if getattr(v, "_gf_aggregate", False):  # a sequence/optional (sequences.py) where a tensor is due
            raise UnsupportedOpError(f"{node.op_type} node {node.name!r}: input {i} ({node.input[i]!r}) is a "
                                     "sequence or optional, not a tensor", op=node.op_type)
        return v

    # ---- emitting --------------------------------------------------------------------------------
    def emit(self, op: str, inputs: list[Value], **attrs) -> Value:
        return self.emit_n(op, inputs, **attrs)[0]

    def emit_n(self, op: str, inputs: list[Value], **attrs) -> list[Value]:
        with self.builder.provenance(self.node_name, ""):
            return self.builder.emit(op, inputs, attrs)

    def scalar(self, x, dtype: str) -> Value:
        from graphforge.dtypes import to_numpy_dtype
        return self.emit("constant", [], value=np.array(x, dtype=to_numpy_dtype(dtype)))

    def cast(self, v: Value, dtype: str) -> Value:
        return v if v.type.dtype == dtype else self.emit("cast", [v], dtype=dtype)

    def fresh_symbol(self) -> str:
        self._sym += 1
        return f"unk{self._sym}"


def sanitize(name: str) -> str:
    out = _NAME.sub("_", name)
    if not out or out.isdigit():
        out = "t" + out
    return out


_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def _input_symbols(g: onnx.GraphProto) -> set[str]:
    """The symbols the graph's inputs pin down on their own: a plain-identifier dim_param (``seq``)
    or one that is a symbol plus or minus a constant (``seq+4``, as graphforge writes an input
    ``f32[seq+4]``; a run binds ``seq`` from it). ``batch-size`` (two names) pins neither."""
    found = set()
    for vi in g.input:
        for d in vi.type.tensor_type.shape.dim:
            if not (d.HasField("dim_param") and d.dim_param):
                continue
            if _IDENTIFIER.fullmatch(d.dim_param):
                found.add(d.dim_param)
            elif is_dim_text(d.dim_param):
                try:
                    dim = check_dim(d.dim_param)
                except ShapeError:
                    continue
                names = dim_symbols(dim) if isinstance(dim, str) else set()
                if len(names) == 1 and isinstance(dim_sub(dim, next(iter(names))), int):
                    found |= names
    return found


def _expression_dim(text: str, symbols: set[str]):
    """graphforge's exporter writes symbolic dim expressions as dim_params (``batch+1``,
    ``floor(h/2)+1``). One that reads as an expression over symbols the graph's inputs also name, each
    on its own, is that expression again (so ``import(export(g))`` keeps ``f32[batch+1]`` tied to
    ``batch``); anything else (``batch-size`` as a name, ``floor(s0/2)`` without an ``s0`` input dim)
    stays one opaque symbol, as before."""
    if text in symbols or not is_dim_text(text):
        return None
    try:
        dim = check_dim(text)
    except ShapeError:
        return None
    if isinstance(dim, str) and dim_symbols(dim) <= symbols:
        return dim
    return None


def _value_type(ctx: ImportContext, vi: onnx.ValueInfoProto) -> TensorType:
    if not vi.type.HasField("tensor_type"):
        raise UnsupportedOpError(f"graph input {vi.name!r} is not a tensor (sequences/maps/optionals "
                                 "are not supported)")
    tt = vi.type.tensor_type
    dims: list[int | str] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            expr = _expression_dim(d.dim_param, ctx.input_symbols)
            if expr is not None:
                dims.append(expr)
                continue
            s = re.sub(r"\W", "_", d.dim_param)
            dims.append(s if s and not s[0].isdigit() else "d_" + s)
        else:
            dims.append(ctx.fresh_symbol())
    if not tt.HasField("shape"):
        raise UnsupportedOpError(f"graph input {vi.name!r} has no shape (rank must be known)")
    return TensorType(tuple(dims), onnx_dtype(tt.elem_type))


def _fold(ctx: ImportContext, node: onnx.NodeProto) -> list[np.ndarray] | None:
    """Evaluate ``node`` with onnx's reference evaluator when all its inputs are static."""
    if node.op_type in _NO_FOLD or node.op_type in _OWN_FOLD or node.domain not in ("", "ai.onnx"):
        return None
    ins = [ctx.const(n) if n else None for n in node.input]
    if any(n and a is None for n, a in zip(node.input, ins)):
        return None
    if any(a is not None and a.dtype == object for a in ins):  # shape arithmetic on symbolic dims
        from .shape_values import fold_dims
        return fold_dims(node, ins, {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute},
                         ctx.opset)
    if node.op_type == "Constant" or any(a is not None and a.size > 1 << 20 for a in ins):
        return None
    predicted = _predicted_out_bytes(ctx, node, ins)
    if predicted is None or not ctx.budget.afford(predicted):
        return None  # unknown or over-budget size: the importer emits it as run-time computation
    from onnx.reference import ReferenceEvaluator

    try:
        ev = ReferenceEvaluator(node, opsets={"": ctx.opset})  # type: ignore[arg-type]
        feeds = {n: a for n, a in zip(node.input, ins) if n}
        outs = ev.run(None, feeds)
    except Exception:  # noqa: BLE001  (fall back to emitting the node)
        return None
    return [np.asarray(o) for o in outs]


# what an importer raises when a node that passed onnx.checker still contradicts its op's contract
_MALFORMED = (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError, OverflowError)
_DATA_MAX = 1 << 12  # inputs up to this many elements are shown to shape inference as data (shapes, repeats)


def _predicted_out_bytes(ctx: ImportContext, node: onnx.NodeProto, ins) -> float | None:
    """Bytes of ``node``'s outputs on these static inputs, by onnx's per-op shape inference (which
    reads small constant inputs such as shapes and repeats); None when a shape stays unknown."""
    from onnx import defs, shape_inference

    try:
        schema = defs.get_schema(node.op_type, ctx.opset, node.domain)
        types, data = {}, {}
        for n, a in zip(node.input, ins):
            if not n:
                continue
            types[n] = onnx.helper.make_tensor_type_proto(onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            if a.size <= _DATA_MAX:
                data[n] = numpy_helper.from_array(a, n)
        outs = shape_inference.infer_node_outputs(schema, node, types, data)
    except Exception:  # noqa: BLE001  (no schema, unsupported dtype, inference refused: do not fold)
        return None
    total = 0.0
    for name in node.output:
        if not name:
            continue
        t = outs.get(name)
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return None
        dims = t.tensor_type.shape.dim
        if not all(d.HasField("dim_value") for d in dims):
            return None
        try:
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.tensor_type.elem_type)).itemsize
        except Exception:  # noqa: BLE001
            return None
        total += nbytes_of([d.dim_value for d in dims], max(itemsize, 1))
    return total


def _check_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset of ``model``, refused when graphforge's importers do not know it."""
    opset = 1  # no default-domain entry: only custom-domain ops, refused by name below
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            opset = int(imp.version)
    hi = max_import_opset()
    if not MIN_OPSET <= opset <= hi:
        raise LoadError(f"ONNX model declares opset {opset}; graphforge imports opsets {MIN_OPSET}..{hi}",
                        hint="re-export the model with a supported opset (e.g. onnx.version_converter)")
    return opset


MIN_OPSET = 1
"""The oldest default-domain opset accepted (importers branch on ``ctx.opset`` where semantics changed)."""


def max_import_opset() -> int:
    """The newest opset the installed onnx knows (its reference evaluator folds constants with it)."""
    return int(onnx.defs.onnx_opset_version())


def from_onnx(model_or_path, *, check: bool = True, fold: bool = True, name: str | None = None,
              constant_inputs: dict | None = None, max_constant_bytes: int | None = None,
              aggregate_inputs: dict | None = None) -> Graph:
    """Import an ONNX model (``ModelProto``, path, or bytes) into a verified graphforge :class:`Graph`.

    The model is validated first (``onnx.checker`` full check, strict shape inference); external data
    is read only from inside the model's directory. Every unsupported op is listed in one
    :class:`UnsupportedOpError`. ``constant_inputs`` (ONNX input name → array) specialises graph inputs
    to fixed values (they are no longer inputs of the graph), e.g. a shape fed at run time.

    ``max_constant_bytes`` bounds what the import computes in memory (folded constants, tables):
    default :data:`budget.DEFAULT_MAX_CONSTANT_BYTES` or ``$GRAPHFORGE_MAX_CONSTANT_BYTES``. A value
    over it stays run-time computation where the op allows, else the import raises :class:`LoadError`
    naming the node and the size. Opsets outside ``MIN_OPSET..max_import_opset()`` are refused.

    ``aggregate_inputs`` (ONNX input name → list of arrays / None / array) gives the structure of
    sequence and optional graph inputs; each element becomes a graph input (sequences.py). A sequence
    or optional graph output becomes one graph output per element (:func:`from_onnx_structured`).
    """
    return from_onnx_structured(model_or_path, check=check, fold=fold, name=name, constant_inputs=constant_inputs,
                                max_constant_bytes=max_constant_bytes, aggregate_inputs=aggregate_inputs)[0]


def from_onnx_structured(model_or_path, *, check: bool = True, fold: bool = True, name: str | None = None,
                         constant_inputs: dict | None = None, max_constant_bytes: int | None = None,
                         aggregate_inputs: dict | None = None) -> tuple[Graph, list]:
    """:func:`from_onnx` and the structure of each ONNX output ("tensor", or a sequence/optional's
    layout over the flat graph outputs, for ``sequences.regroup``)."""
    from . import sequences

    aggregate_inputs = dict(aggregate_inputs or {})
    constant_inputs = dict(constant_inputs or {})
    budget = ImportBudget(resolve_max_constant_bytes(max_constant_bytes))
    _load_tables()
    model = load_model_checked(model_or_path, check=check)
    opset = _check_opset(model)
    g = model.graph
    # all unsupported ops at once
    missing: Counter = Counter()
    first_name: dict[str, str] = {}
    for node in all_nodes(g):
        key = importer_key(node)
        if key not in IMPORTERS:
            missing[key] += 1
            first_name.setdefault(key, node.name)
    if missing:
        listing = "; ".join(f"{k} (node {first_name[k]!r}, {c} node{'s' if c > 1 else ''})"
                            for k, c in sorted(missing.items()))
        raise UnsupportedOpError(f"ONNX model uses {len(missing)} op type(s) graphforge cannot import: "
                                 f"{listing}", hint="supported: " + ", ".join(supported_op_types()))

    graph = Graph(sanitize(name or g.name or "onnx_model"))
    ctx = ImportContext(graph, opset, budget)
    ctx.fold = fold
    ctx.input_symbols = _input_symbols(g)
    ctx.recorded_scopes = _recorded_scopes(model)
    inits = {t.name: t for t in g.initializer}
    for vi in g.input:
        if vi.name in inits:
            continue
        if vi.name in constant_inputs:
            ctx.consts[vi.name] = np.asarray(constant_inputs[vi.name])
            continue
        if sequences.is_aggregate_type(vi.type):
            if vi.name not in aggregate_inputs:
                raise NeedsConstantError(f"graph input {vi.name!r} is a sequence/optional: its structure must be "
                                         "known at import time (from_onnx(aggregate_inputs=))", tensor=vi.name)
            ctx.values[vi.name] = sequences.bind_input(ctx, vi, aggregate_inputs[vi.name])
            continue
        ctx.values[vi.name] = graph.add_input(sanitize(vi.name), _value_type(ctx, vi))
    for t in g.initializer:
        try:
            arr = numpy_helper.to_array(t)
        except _MALFORMED as exc:  # data that contradicts the declared dims/type (onnx.checker is lenient)
            raise LoadError(f"initializer {t.name!r} (dims {list(t.dims)}) is malformed: {type(exc).__name__}: "
                            f"{str(exc).strip()[:300]}") from None
        kind = "param" if arr.dtype.kind == "f" else "const"
        if arr.dtype.kind == "f" and arr.dtype.itemsize < 2:
            raise UnsupportedOpError(f"initializer {t.name!r}: dtype {arr.dtype} is not supported")
        pname = graph.fresh_param_name(sanitize(t.name))
        arr = np.array(arr, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        v = graph.add_param(pname, TensorType(arr.shape, from_numpy_dtype(arr.dtype)), arr, kind)
        ctx.values[t.name] = v
        if kind == "const":
            ctx.consts[t.name] = arr
    import_nodes(ctx, g.node)
    out_values, out_names, structure = [], [], []
    for vi in g.output:
        x = ctx.values.get(vi.name)
        vals, names, st = (sequences.flatten_output(ctx, x, vi.name) if sequences.is_aggregate(x)
                           else ([ctx.value(vi.name)], [vi.name], "tensor"))
        out_values += vals
        out_names += names
        structure.append(st)
    graph.set_outputs(out_values, out_names)
    _drop_dead_nodes(graph)
    _drop_unused_params(graph)
    graph.toposort()
    graph.verify()
    return graph, structure


# ONNX ops that may read a sequence/optional input (sequences.py); any other op gets a typed refusal
_TAKES_AGGREGATES = frozenset({"Identity", "If", "Loop", "SequenceConstruct", "SequenceLength", "SequenceAt",
                               "SequenceInsert", "SequenceErase", "ConcatFromSequence", "SequenceMap", "Optional",
                               "OptionalHasElement", "OptionalGetElement"})


def _recorded_scopes(model) -> dict[str, str]:
    """``{first output name: module scope}`` from the provenance table a compact graphforge export
    keeps in ``metadata_props`` (``runtimes/onnx/provenance.py``); empty without one, or when the
    table does not match the nodes (the scopes are a courtesy: the import does not depend on them)."""
    from graphforge.runtimes.onnx.provenance import METADATA_KEY, node_provenance

    if not any(p.key == METADATA_KEY for p in model.metadata_props):
        return {}
    try:
        return {node.output[0]: scope for node, scope, _ in node_provenance(model) if scope and node.output}
    except LoadError:
        return {}


def import_nodes(ctx: ImportContext, nodes) -> None:
    """Import ONNX ``nodes`` in order at the builder's insertion point, recording each output in
    ``ctx`` (the top-level graph, and a control-flow subgraph's body into its region alike)."""
    for node in nodes:
        # a name with invalid UTF-8 comes back from protobuf as bytes: scopes are text
        name = node.name.decode("utf-8", "replace") if isinstance(node.name, bytes) else node.name
        ctx.node_name = name or (ctx.recorded_scopes.get(node.output[0]) if node.output else None) \
            or str(node.op_type)
        if node.op_type not in _TAKES_AGGREGATES and any(
                getattr(ctx.values.get(n), "_gf_aggregate", False) for n in node.input if n):
            unsupported(node, "an input is a sequence or optional; this op takes tensors")
        folded = _fold(ctx, node) if ctx.fold else None
        try:
            if folded is not None:
                outs: list[Any] = folded
            else:
                outs = IMPORTERS[importer_key(node)](ctx, node)
        except GraphforgeError as exc:
            if isinstance(exc, UnsupportedOpError):
                raise
            raise type(exc)(f"while importing ONNX node {node.name!r} ({node.op_type}): {exc.detail}",
                            op=node.op_type, scope=node.name or None, hint=exc.hint) from None
        except _MALFORMED as exc:
            # the file passed onnx.checker yet contradicts what the op needs (a rank-2 Reshape shape,
            # an attribute out of range…): an untrusted file's fault, reported as such
            raise LoadError(f"ONNX node {node.name!r} ({node.op_type}) is malformed: {type(exc).__name__}: "
                            f"{str(exc).strip()[:300]}", op=node.op_type, scope=node.name or None) from None
        for oname, out in zip(node.output, outs):
            if not oname or out is None:
                continue
            if getattr(out, "_gf_aggregate", False):  # a sequence/optional resolved at import (sequences.py)
                ctx.values[oname] = out
            elif isinstance(out, Known):
                ctx.values[oname] = out.value
                ctx.consts[oname] = out.array
            elif isinstance(out, Value):
                ctx.values[oname] = out
            else:
                ctx.consts[oname] = np.asarray(out)


def importer_key(node) -> str:
    """The IMPORTERS key of ``node``: its op type in the default domain, ``"domain::OpType"`` elsewhere
    (``ai.onnx.preview.training::Gradient``)."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def all_nodes(g: onnx.GraphProto):
    """Every node of ``g``, those of its subgraphs (If branches, Loop/Scan bodies) included."""
    for node in g.node:
        yield node
        for a in node.attribute:
            for sub in ([a.g] if a.type == a.GRAPH else list(a.graphs) if a.type == a.GRAPHS else []):
                yield from all_nodes(sub)


def _drop_dead_nodes(graph: Graph) -> None:
    """Remove nodes whose results nothing uses (e.g. the run-time half of a :class:`Known`)."""
    from graphforge.passes.dce import dce

    dce(graph)


def _drop_unused_params(graph: Graph) -> None:
    used = {id(v) for n in graph.nodes for v in n.inputs} | {id(v) for v in graph.outputs}
    for pname, v in list(graph.param_values.items()):
        if id(v) not in used:
            graph.remove_param(pname)
