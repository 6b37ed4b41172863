"""ONNX sequences and optionals, resolved at import time (see docs/onnx_import.md, "Sequences and optionals").

The IR has tensor values only. A sequence whose length is known at import time is a :class:`Seq`
(a tuple of elements, each a graph ``Value`` or an import-time ``ndarray``); an optional is an
:class:`Opt` holding its content or ``None``. Both live in ``ctx.values`` beside tensors, so If
branches inlined on a constant condition and unrolled Loops carry them unchanged. Every sequence op
below only rearranges the tuple (no IR node) except ConcatFromSequence and SplitToSequence, which
emit ``concat``/``unsqueeze`` and ``split``/``squeeze``. Anything whose length or presence depends
on run-time data raises a typed error naming the node.
"""
from __future__ import annotations

import numpy as np

from graphforge.errors import LoadError, UnsupportedOpError

from .importer import IMPORTERS, attrs_of, import_nodes, importer, unsupported

__all__ = ["Seq", "Opt", "is_aggregate", "element", "SEQUENCE_OPS"]

SEQUENCE_OPS = ("SequenceEmpty", "SequenceConstruct", "SequenceLength", "SequenceAt", "SequenceInsert",
                "SequenceErase", "ConcatFromSequence", "SplitToSequence", "SequenceMap", "Optional",
                "OptionalHasElement", "OptionalGetElement")


class Seq(tuple):
    """An ONNX sequence of import-time-known length: its elements (``Value`` or ``ndarray``)."""

    __slots__ = ()
    _gf_aggregate = True


class Opt:
    """An ONNX optional known at import time: ``content`` is a tensor element, a :class:`Seq` or None."""

    __slots__ = ("content",)
    _gf_aggregate = True

    def __init__(self, content):
        self.content = content


def is_aggregate(x) -> bool:
    """True for an import-time sequence or optional (not a tensor)."""
    return isinstance(x, (Seq, Opt))


def element(ctx, name: str):
    """ONNX value ``name`` as a sequence element: its import-time array when known, else its Value
    (a sequence or optional itself where ONNX allows one)."""
    c = ctx.const(name)
    if c is not None:
        return c
    return ctx.value(name)


def _tensor(ctx, x):
    """A sequence element as a graph Value (import-time arrays become constants)."""
    return ctx.materialize(x) if isinstance(x, np.ndarray) else x


def _seq(ctx, node, i: int) -> Seq:
    x = ctx.value(node.input[i])
    if not isinstance(x, Seq):
        raise UnsupportedOpError(f"{node.op_type} node {node.name!r}: input {i} ({node.input[i]!r}) must be a "
                                 "sequence whose length is known at import time", op=node.op_type)
    return x


def _position(ctx, node, i: int, n: int, default: int, *, insert: bool = False) -> int:
    """The static position input ``i`` (default ``default``), checked against a sequence of ``n``."""
    if not ctx.has(node, i):
        return default
    p = int(np.asarray(ctx.need_const(node, i, "position")).reshape(-1)[0])
    hi = n if insert else n - 1
    if not -n <= p <= hi:
        raise LoadError(f"{node.op_type} node {node.name!r}: position {p} is outside [-{n}, {hi}] for a "
                        f"sequence of {n}", op=node.op_type)
    return p + n if p < 0 else p


def _shape(x):
    return tuple(x.shape) if isinstance(x, np.ndarray) else tuple(x.type.shape)


@importer("SequenceEmpty")
def _empty(ctx, node):
    return [Seq(())]


@importer("SequenceConstruct")
def _construct(ctx, node):
    return [Seq(element(ctx, n) for n in node.input)]


@importer("SequenceLength")
def _length(ctx, node):
    return [np.array(len(_seq(ctx, node, 0)), dtype=np.int64)]


@importer("SequenceAt")
def _at(ctx, node):
    s = _seq(ctx, node, 0)
    return [s[_position(ctx, node, 1, len(s), 0)]]


@importer("SequenceInsert")
def _insert(ctx, node):
    s = _seq(ctx, node, 0)
    p = _position(ctx, node, 2, len(s), len(s), insert=True)
    return [Seq(s[:p] + (element(ctx, node.input[1]),) + s[p:])]


@importer("SequenceErase")
def _erase(ctx, node):
    s = _seq(ctx, node, 0)
    if not s:
        raise LoadError(f"SequenceErase node {node.name!r}: the sequence is empty", op=node.op_type)
    p = _position(ctx, node, 1, len(s), len(s) - 1)
    return [Seq(s[:p] + s[p + 1:])]


@importer("ConcatFromSequence")
def _concat(ctx, node):
    s = _seq(ctx, node, 0)
    a = attrs_of(node)
    axis, new_axis = int(a["axis"]), int(a.get("new_axis", 0))
    if not s:
        unsupported(node, "concatenating an empty sequence: ONNX leaves the result's shape undefined")
    if new_axis not in (0, 1):
        raise LoadError(f"ConcatFromSequence node {node.name!r}: new_axis must be 0 or 1", op=node.op_type)
    if all(isinstance(x, np.ndarray) and x.dtype != object for x in s):  # import-time values stay so
        return [np.stack(s, axis=axis) if new_axis else np.concatenate(s, axis=axis)]
    parts = [_tensor(ctx, x) for x in s]
    if new_axis:
        rank = len(parts[0].type.shape) + 1
        parts = [ctx.emit("unsqueeze", [p], axes=[axis % rank]) for p in parts]
    rank = len(parts[0].type.shape)
    if len(parts) == 1:
        return [parts[0]]
    return [ctx.emit("concat", parts, axis=axis % rank)]


@importer("SplitToSequence")
def _split(ctx, node):
    x = ctx.input(node, 0)
    a = attrs_of(node)
    rank = len(x.type.shape)
    axis = int(a.get("axis", 0)) % max(rank, 1)
    dim = x.type.shape[axis]
    if ctx.has(node, 1):
        split = np.asarray(ctx.need_const(node, 1, "split")).astype(np.int64)
        if split.ndim == 0:  # chunks of this size, the last one smaller
            if not isinstance(dim, int):
                unsupported(node, f"splitting symbolic dim {dim!r} into chunks: the number of pieces is unknown")
            c = int(split)
            if c <= 0:
                raise LoadError(f"SplitToSequence node {node.name!r}: split {c} must be positive", op=node.op_type)
            sizes = [c] * (dim // c) + ([dim % c] if dim % c else [])
        else:
            sizes = [int(v) for v in split]
        keep = True
    else:
        if not isinstance(dim, int):
            unsupported(node, f"splitting symbolic dim {dim!r} into length-1 pieces: the sequence length is "
                              "data-dependent")
        sizes, keep = [1] * dim, bool(a.get("keepdims", 1))
    if isinstance(dim, int) and sum(sizes) != dim:
        raise LoadError(f"SplitToSequence node {node.name!r}: split sizes {sizes} do not add up to dim {dim}",
                        op=node.op_type)
    if not sizes:
        return [Seq(())]
    if not isinstance(dim, int) and sum(sizes):
        unsupported(node, f"explicit split sizes {sizes} over symbolic dim {dim!r}: the split op needs the dim "
                          "to equal their sum statically")
    if any(n == 0 for n in sizes):  # empty pieces hold no data: constants (the split op takes sizes >= 1)
        from graphforge.dtypes import to_numpy_dtype

        def piece(n, off):
            if n == 0:  # (all-zero sizes over a symbolic dim: the input is empty there too)
                shp = [0 if i == axis else d for i, d in enumerate(x.type.shape)]
                if any(not isinstance(d, int) for d in shp):
                    unsupported(node, "an empty piece whose other dims are symbolic")
                return np.zeros(shp, to_numpy_dtype(x.type.dtype))
            return ctx.emit("slice", [x], starts=[off], ends=[off + n], axes=[axis], steps=[1])

        offs = np.cumsum([0] + sizes[:-1]).tolist()
        parts = [piece(n, o) for n, o in zip(sizes, offs)]
        return [Seq(parts)]
    parts = [x] if len(sizes) == 1 else ctx.emit_n("split", [x], axis=axis, sizes=sizes)
    if not keep:
        parts = [ctx.emit("squeeze", [p], axes=[axis]) for p in parts]
    return [Seq(parts)]


@importer("SequenceMap")
def _map(ctx, node):
    body = next((x.g for x in node.attribute if x.name == "body"), None)
    if body is None or len(body.input) != len(node.input):
        raise LoadError(f"SequenceMap node {node.name!r}: its body must take one input per node input",
                        op=node.op_type)
    args = [ctx.value(n) if isinstance(ctx.values.get(n), Seq) else element(ctx, n) for n in node.input]
    lengths = {len(x) for x in args if isinstance(x, Seq)}
    if not isinstance(args[0], Seq):
        raise UnsupportedOpError(f"SequenceMap node {node.name!r}: input 0 must be a sequence", op=node.op_type)
    if len(lengths) != 1:
        raise LoadError(f"SequenceMap node {node.name!r}: its sequences have different lengths {sorted(lengths)}",
                        op=node.op_type)
    outs: list[list] = [[] for _ in body.output]
    for i in range(lengths.pop()):  # the body imported once per element, inline
        saved = (ctx.values, ctx.consts, ctx.node_name)
        ctx.values, ctx.consts = dict(ctx.values), dict(ctx.consts)
        try:
            for vi, x in zip(body.input, args):
                e = x[i] if isinstance(x, Seq) else x
                ctx.values.pop(vi.name, None)
                ctx.consts.pop(vi.name, None)
                if isinstance(e, np.ndarray):
                    ctx.consts[vi.name] = e
                else:
                    ctx.values[vi.name] = e
            import_nodes(ctx, body.node)
            for k, o in enumerate(body.output):
                outs[k].append(element(ctx, o.name))
        finally:
            ctx.values, ctx.consts, ctx.node_name = saved
    return [Seq(o) for o in outs]


@importer("Optional")
def _optional(ctx, node):
    return [Opt(element(ctx, node.input[0]) if ctx.has(node, 0) else None)]


@importer("OptionalHasElement")
def _has(ctx, node):
    if not ctx.has(node, 0):
        return [np.array(False)]
    x = element(ctx, node.input[0])
    return [np.array(x.content is not None if isinstance(x, Opt) else True)]


@importer("OptionalGetElement")
def _get(ctx, node):
    x = element(ctx, node.input[0])
    if isinstance(x, Opt):
        if x.content is None:
            raise LoadError(f"OptionalGetElement node {node.name!r}: the optional {node.input[0]!r} is empty",
                            op=node.op_type)
        return [x.content]
    return [x]


from .elementwise import _identity as _tensor_identity  # noqa: E402  (registered first, then wrapped)


def _identity(ctx, node):
    """Identity passes sequences and optionals through; tensors go to the tensor importer."""
    x = ctx.values.get(node.input[0])
    return [x] if is_aggregate(x) else _tensor_identity(ctx, node)


IMPORTERS["Identity"] = _identity


# ---- sequences and optionals at the graph's edges -------------------------------------------------
# A graph input or output of sequence/optional type becomes one graph tensor per element, named
# ``<name>__<i>`` (inputs; nested: ``<name>__<i>__<j>``) and ``<name>[<i>]`` (outputs). Input
# structure (lengths, presence, shapes) comes from the caller: ``from_onnx(aggregate_inputs=)``, which
# the onnx backend fills from the values it is run with (one imported graph per structure).

def is_aggregate_type(tp) -> bool:
    """True for an ONNX ``TypeProto`` that is a sequence or an optional."""
    return tp.WhichOneof("value") in ("sequence_type", "optional_type")


def flatten_feed(name: str, x) -> list[tuple[str, np.ndarray]]:
    """The (graph input name, array) pairs of a sequence/optional input value ``x`` (list, None, array)."""
    from .importer import sanitize

    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        return [p for i, e in enumerate(x) for p in flatten_feed(f"{name}__{i}", e)]
    return [(sanitize(name), np.asarray(x))]


def structure_key(x) -> tuple:
    """What an imported graph depends on in a sequence/optional input: lengths, presence, shapes, dtypes."""
    if x is None:
        return (None,)
    if isinstance(x, (list, tuple)):
        return ("seq",) + tuple(structure_key(e) for e in x)
    a = np.asarray(x)
    return (a.dtype.str, a.shape)


def bind_input(ctx, vi, x):
    """A sequence/optional graph input ``vi`` with run-time value ``x`` as a :class:`Seq`/:class:`Opt`
    of new graph inputs (static shapes taken from ``x``)."""
    from graphforge.dtypes import from_numpy_dtype
    from graphforge.ir.types import TensorType

    from .importer import onnx_dtype, sanitize

    def build(tp, x, name):
        kind = tp.WhichOneof("value")
        if kind == "tensor_type":
            a = np.asarray(x)
            want = onnx_dtype(tp.tensor_type.elem_type)
            if from_numpy_dtype(a.dtype) != want:
                raise LoadError(f"graph input {vi.name!r}: element {name!r} is {a.dtype}, the model declares {want}")
            return ctx.graph.add_input(sanitize(name), TensorType(_dims(tp, a.shape, sizes), want))
        if kind == "sequence_type":
            if not isinstance(x, (list, tuple)):
                raise LoadError(f"graph input {vi.name!r}: a sequence needs a list of arrays, got {type(x).__name__}")
            return Seq(build(tp.sequence_type.elem_type, e, f"{name}__{i}") for i, e in enumerate(x))
        if kind == "optional_type":
            return Opt(None if x is None else build(tp.optional_type.elem_type, x, name))
        raise UnsupportedOpError(f"graph input {vi.name!r}: ONNX {kind} values are not supported")

    # a declared symbolic dim (``N``) stays symbolic where every element of this input agrees on its
    # size, so the elements broadcast with tensor inputs typed with the same symbol
    sizes: dict[str, set] = {}

    def collect(tp, x):
        kind = tp.WhichOneof("value")
        if x is None:
            return
        if kind == "tensor_type" and tp.tensor_type.HasField("shape"):
            a = np.asarray(x)
            if len(tp.tensor_type.shape.dim) == a.ndim:
                for d, n in zip(tp.tensor_type.shape.dim, a.shape):
                    if d.HasField("dim_param") and d.dim_param:
                        sizes.setdefault(d.dim_param, set()).add(n)
        elif kind == "sequence_type" and isinstance(x, (list, tuple)):
            for e in x:
                collect(tp.sequence_type.elem_type, e)
        elif kind == "optional_type":
            collect(tp.optional_type.elem_type, x)

    collect(vi.type, x)
    return build(vi.type, x, vi.name)


def _dims(tp, shape, sizes) -> tuple:
    import re

    dims = list(shape)
    decl = tp.tensor_type.shape.dim if tp.tensor_type.HasField("shape") else []
    if len(decl) == len(dims):
        for i, d in enumerate(decl):
            if d.HasField("dim_param") and d.dim_param and len(sizes.get(d.dim_param, ())) == 1:
                s = re.sub(r"\W", "_", d.dim_param)  # as importer._value_type names it
                dims[i] = s if s and not s[0].isdigit() else "d_" + s
    return tuple(dims)


def flatten_output(ctx, x, name: str):
    """A graph output as (values, names, structure); ``structure`` is what :func:`regroup` reads."""
    if isinstance(x, Opt):
        if x.content is None:
            return [], [], ("opt", None)
        vals, names, sub = flatten_output(ctx, x.content, name)
        return vals, names, ("opt", sub)
    if isinstance(x, Seq):
        vals, names, subs = [], [], []
        for i, e in enumerate(x):
            v, n, s = flatten_output(ctx, e, f"{name}[{i}]")
            vals += v
            names += n
            subs.append(s)
        return vals, names, ("seq", tuple(subs))
    return [_tensor(ctx, x)], [name], "tensor"


def regroup(structures, flat) -> list:
    """Graph outputs ``flat`` back into ONNX values (lists for sequences, None for empty optionals)."""
    it = iter(flat)

    def take(s):
        if s == "tensor":
            return next(it)
        if s[0] == "opt":
            return None if s[1] is None else take(s[1])
        return [take(e) for e in s[1]]

    return [take(s) for s in structures]
