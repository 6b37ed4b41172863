"""The op registry: one :class:`OpDef` per op, the only place an op is defined.

An OpDef holds the attribute schema, the type rule, the NumPy reference, the VJP rule (written with
graphforge ops, so gradients are graphs) or the explicit mark :data:`NOT_DIFFERENTIABLE`, the FLOP
count, an optional decomposition into primitives, and conformance samples. Back ends register their
lowerings by op name in their own packages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..dtypes import canonical_dtype
from ..errors import DTypeError, GraphforgeError, ShapeError, UnsupportedOpError
from ..ir.dims import dim_expr, requirements_collected
from ..ir.types import TensorType

__all__ = ["Attr", "REQUIRED", "NOT_DIFFERENTIABLE", "OpDef", "Sample", "register_op", "get_op",
           "has_op", "all_ops", "check_attrs", "infer_types", "RegionSig", "region_sigs", "unregister_op", "lookup_op", "type_stamp",
           "stamp_holds", "infer_and_stamp", "STRING_OPS"]


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()


class _NotDifferentiable:
    """The explicit decision that an op has no gradient (integer/boolean results, comparisons)."""

    def __repr__(self):
        return "NOT_DIFFERENTIABLE"


NOT_DIFFERENTIABLE = _NotDifferentiable()
"""An ``OpDef``'s ``vjp`` when the op has no gradient (integer/boolean results, argmax, ...)."""

_ATTR_KINDS = ("int", "float", "bool", "str", "ints", "floats", "dim", "dims", "dtype", "tensor", "any")


@dataclass(frozen=True)
class Attr:
    """One attribute: its kind, default (``REQUIRED`` if none), allowed values and optionality.

    Args:
        kind: ``"int"``, ``"float"``, ``"str"``, ``"ints"``, ``"dtype"``, ...
        default: the default value, or ``REQUIRED``.
        choices: None, or the allowed values.
        optional: whether the attribute may be absent (None).
        elide_default: the text printer leaves the attribute out while it holds its default (for an
            attribute added to an existing op, so graphs that never set it print as before).
    """

    kind: str
    default: Any = REQUIRED
    choices: tuple | None = None
    optional: bool = False  # None is accepted
    # The text printer leaves the attribute out while it holds its default: an attribute added to an
    # existing op (cast's ``saturate``) does not change how every graph that never sets it prints.
    elide_default: bool = False

    def __post_init__(self):
        if self.kind not in _ATTR_KINDS:
            raise ValueError(f"unknown attribute kind {self.kind!r}")


@dataclass
class Sample:
    """A conformance sample: input types (symbolic dims allowed), attrs, and how to fill the inputs.

    ``bind`` gives concrete values to the symbolic dims; ``domain`` per input is one of ``"any"``,
    ``"positive"``, ``"unit"`` (in (-1, 1)), ``"nonzero"``, ``"int:LO:HI"``, ``"bool"``, or a fixed
    NumPy array. ``grad`` False skips the gradient checks for this sample.

    Args:
        inputs: the input types.
        attrs: the op's attributes for this sample.
        bind: see above.
        domain: see above.
        grad: see above.
        note: a comment shown in test ids and reports.
        regions: for region ops (cond, scan, ...): ``regions(builder, input_types, attrs) -> [Block]``
            builds the sample's regions; None for ops without regions.
    """

    inputs: Sequence[TensorType]
    attrs: dict = field(default_factory=dict)
    bind: dict = field(default_factory=dict)
    domain: Sequence[Any] | None = None
    grad: bool = True
    note: str = ""
    # Region ops: ``regions(builder, input_types, attrs) -> [Block]`` builds the sample's regions.
    regions: Any = None


@dataclass
class OpDef:
    name: str
    type_rule: Callable[[list[TensorType], dict], list[TensorType]]
    reference: Callable[..., list[np.ndarray]]
    attrs: dict[str, Attr] = field(default_factory=dict)
    num_inputs: tuple[int, int | None] = (1, 1)  # (min, max); max None = variadic
    flops: Callable[[list[TensorType], list[TensorType], dict], Any] | None = None
    vjp: Any = None  # callable, NOT_DIFFERENTIABLE, or None (undecided: the coverage test fails)
    decompose: Callable | None = None  # (inputs: list[Tensor], attrs) -> list[Tensor]
    family: str = ""
    doc: str = ""
    samples: list[Sample] = field(default_factory=list)
    nondiff_inputs: tuple[int, ...] = ()  # inputs that never get a cotangent (indices, keys, masks)
    commutative: bool = False
    elementwise: bool = False
    random: bool = False  # depends on an explicit RNG key input; CSE must not merge distinct keys
    # Names of the regions a node of this op owns (control flow: ("then", "else"), ("body",)). A
    # region op's type rule is ``type_rule(in_types, attrs, regions)`` with one RegionSig per region,
    # and its reference ``reference(arrays, attrs, env, regions=blocks)``.
    regions: tuple[str, ...] = ()

    @property
    def differentiable(self) -> bool:
        return self.vjp is not NOT_DIFFERENTIABLE and self.vjp is not None


_REGISTRY: dict[str, OpDef] = {}


def register_op(opdef: OpDef, *, replace: bool = False) -> OpDef:
    """Add ``opdef`` to the op registry (the one registry every pass and back end reads).

    ``replace=True`` overrides an op of the same name; without it that is a ``GraphforgeError``.
    Returns ``opdef``. See docs/tutorials/04_extending.md for a whole new op.

    Example:
        ```python
        gf.register_op(gf.OpDef(name="my_op", family="user", type_rule=..., reference=..., vjp=...))
        ```
    """
    if opdef.name in _REGISTRY and not replace:
        raise GraphforgeError(f"op {opdef.name!r} is already registered; pass replace=True to override it")
    _REGISTRY[opdef.name] = opdef
    return opdef


def unregister_op(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_op(name: str) -> OpDef:
    """The registered ``OpDef`` called ``name``; an unknown ``name`` is an ``UnsupportedOpError``.

    Example:
        ```python
        gf.get_op("relu").flops
        ```
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedOpError(f"unknown op {name!r}", ops=[name]) from None


def lookup_op(name: str) -> OpDef | None:
    """The OpDef registered as ``name``, or None (``get_op`` without the error, for hot loops)."""
    return _REGISTRY.get(name)


def has_op(name: str) -> bool:
    return name in _REGISTRY


def all_ops() -> dict[str, OpDef]:
    """Every registered op, name -> ``OpDef``, sorted by name (a copy).

    Example:
        ```python
        print(len(gf.all_ops()), "ops")
        ```
    """
    return dict(sorted(_REGISTRY.items()))


def _check_kind(kind: str, value) -> bool:
    if kind == "any":
        return True
    if kind == "int":
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, (bool, np.bool_))
    if kind in ("str", "dtype"):
        return isinstance(value, str)
    if kind == "ints":
        return isinstance(value, (list, tuple)) and all(_check_kind("int", v) for v in value)
    if kind == "floats":
        return isinstance(value, (list, tuple)) and all(_check_kind("float", v) for v in value)
    if kind == "dim":  # an int or a symbolic dim expression (``x.shape[1] - 1``)
        return _check_kind("int", value) or isinstance(value, str)
    if kind == "dims":
        return isinstance(value, (list, tuple)) and all(_check_kind("dim", v) for v in value)
    if kind == "tensor":
        return isinstance(value, np.ndarray)
    return False


def check_attrs(opdef: OpDef, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Validate attributes against the schema, fill defaults, normalise lists; raise ShapeError."""
    schema = opdef.attrs
    if not schema and not attrs:
        return {}
    unknown = sorted(k for k in attrs if k not in schema)
    if unknown:
        raise ShapeError(f"unknown attribute(s) {', '.join(unknown)}; {opdef.name} takes "
                         f"{', '.join(opdef.attrs) or 'no attributes'}")
    out: dict[str, Any] = {}
    for key, spec in opdef.attrs.items():
        if key in attrs:
            value = attrs[key]
        elif spec.default is REQUIRED:
            raise ShapeError(f"missing required attribute {key!r}")
        else:
            value = spec.default
        if value is None and (spec.optional or spec.default is None):
            out[key] = None
            continue
        if not _check_kind(spec.kind, value):
            raise ShapeError(f"attribute {key}={value!r} should be of kind {spec.kind}")
        if spec.kind == "int":
            value = int(value)
        elif spec.kind == "float":
            value = float(value)
        elif spec.kind == "bool":
            value = bool(value)
        elif spec.kind == "ints":
            value = [int(v) for v in value]
        elif spec.kind == "dims":
            value = [dim_expr(v) if isinstance(v, str) else int(v) for v in value]
        elif spec.kind == "dim":
            value = dim_expr(value) if isinstance(value, str) else int(value)
        elif spec.kind == "floats":
            value = [float(v) for v in value]
        elif spec.kind == "dtype":
            value = canonical_dtype(value)
        if spec.choices is not None and value not in spec.choices:
            raise ShapeError(f"attribute {key}={value!r} must be one of {', '.join(map(repr, spec.choices))}")
        out[key] = value
    return out


@dataclass(frozen=True)
class RegionSig:
    """What a region op's type rule sees of one region: its argument and result (yield) types."""

    args: tuple
    results: tuple


def region_sigs(regions) -> list[RegionSig]:
    """The RegionSig of each Block (or RegionSig, passed through)."""
    out = []
    for r in regions:
        if isinstance(r, RegionSig):
            out.append(r)
        else:
            out.append(RegionSig(tuple(a.type for a in r.arguments), tuple(v.type for v in r.results)))
    return out


# The ops that take string tensors (dtypes.STRING): they move, select, compare or convert them without
# arithmetic. ops/strings.py adds its own; every other op refuses a string input when the node is built.
STRING_OPS = {"reshape", "flatten", "squeeze", "unsqueeze", "transpose", "concat", "split", "slice", "gather",
              "broadcast_to", "where", "equal", "not_equal", "cast", "constant", "dim_size", "compress",
              "cond", "scan", "while_loop", "optimization_barrier"}


def infer_types(opdef: OpDef, input_types: list[TensorType], attrs: dict, regions=None) -> list[TensorType]:
    lo, hi = opdef.num_inputs
    n = len(input_types)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo}..{hi if hi is not None else ''}"
        raise ShapeError(f"takes {want} inputs, got {n}")
    if opdef.name not in STRING_OPS and any(t.dtype == "string" for t in input_types):
        raise DTypeError(f"{opdef.name} does not take string tensors, got {', '.join(map(str, input_types))}",
                         hint="string tensors are moved, selected, compared (equal) and cast; see "
                              "graphforge/ops/strings.py for the string ops")
    if opdef.regions:
        if regions is None or len(regions) != len(opdef.regions):
            got = 0 if regions is None else len(regions)
            raise ShapeError(f"{opdef.name} owns {len(opdef.regions)} region(s) ({', '.join(opdef.regions)}), got {got}",
                             hint=f"build it with the tracing API (gf.{opdef.name}) or pass regions= to Builder.emit")
        return list(opdef.type_rule(list(input_types), attrs, region_sigs(regions)))
    if regions:
        raise ShapeError(f"{opdef.name} owns no regions, got {len(regions)}")
    return list(opdef.type_rule(list(input_types), attrs))


# ---- type stamps: which checks a node has passed ---------------------------------------------------
# A stamp records that ``opdef``'s type rule, run on input types ``in_types`` with attributes
# ``attrs`` (already through check_attrs), gave ``out_types``. Type rules are pure functions of
# (types, attrs), so while a node still has the same OpDef, equal input and result types and equal
# attributes, re-running its rule (the ``infer`` pass) cannot give another answer and is skipped.

_SCALARS = (int, float, str, bool, type(None))


def _freeze_attr(value, arrays: list):
    kind = type(value)
    if kind in _SCALARS:
        return (kind, value)  # the type too: True == 1 == 1.0, but check_attrs tells them apart
    if kind is list or kind is tuple:
        return (kind, tuple(_freeze_attr(v, arrays) for v in value))
    if kind is np.ndarray:
        # By identity (the stamp keeps the array alive, so the id stays unique), shape and dtype.
        arrays.append(value)
        return (np.ndarray, id(value), value.shape, value.dtype.str)
    raise TypeError  # anything else (dicts, user objects): no stamp, the node is always re-checked


def _freeze_attrs(attrs: dict):
    if not attrs:
        return (), None
    arrays: list = []
    items = []
    # A loop, not a generator: every traced node and every node ``infer`` looks at comes here.
    try:
        for k, v in attrs.items():
            kind = type(v)
            items.append((k, (kind, v) if kind in _SCALARS else _freeze_attr(v, arrays)))
    except TypeError:
        return None, None
    return tuple(items), arrays


def type_stamp(opdef: OpDef, in_types, attrs: dict, out_types) -> tuple | None:
    """The stamp of a node whose types ``opdef``'s rule just checked (None when its attributes
    cannot be compared cheaply and safely)."""
    if opdef.regions:  # the result types also depend on the regions: always re-checked
        return None
    frozen, arrays = _freeze_attrs(attrs)
    if frozen is None:
        return None
    # The rule and schema objects too: an OpDef edited in place (a patched rule) is re-checked.
    return (opdef, opdef.type_rule, opdef.attrs, opdef.num_inputs, tuple(in_types), frozen, tuple(out_types),
            arrays)


# (opdef, its rule and schema, input types, frozen attributes) -> (result types, stamp): a model
# repeats the same layers, so tracing asks the same rule the same question thousands of times.
_INFERRED: dict[tuple, tuple] = {}
_INFERRED_MAX = 65536  # entries; the memo starts over when full


def infer_and_stamp(opdef: OpDef, in_types, attrs: dict, regions=None) -> tuple[list, tuple | None]:
    """:func:`infer_types` and :func:`type_stamp` of a node being built, memoised: a type rule is a
    pure function of (types, attributes), so a repeated question gets the first answer. Not
    memoised: region ops, attributes holding arrays (compared by identity), and rules run while
    :func:`~graphforge.ir.dims.collect_requirements` records what they require (the guards)."""
    frozen, arrays = (None, None) if opdef.regions or requirements_collected() else _freeze_attrs(attrs)
    if frozen is None or arrays:
        out_types = infer_types(opdef, in_types, attrs, regions=regions)
        return out_types, type_stamp(opdef, in_types, attrs, out_types)
    in_types = tuple(in_types)
    # By identity: the entry's stamp holds the OpDef, rule and schema, so their ids stay theirs.
    key = (id(opdef), id(opdef.type_rule), id(opdef.attrs), opdef.num_inputs, in_types, frozen)
    hit = _INFERRED.get(key)
    if hit is not None:
        return list(hit[0]), hit[1]
    out_types = infer_types(opdef, list(in_types), attrs, regions=regions)
    out = tuple(t if type(t) is TensorType else TensorType(t.shape, t.dtype) for t in out_types)
    stamp = (opdef, opdef.type_rule, opdef.attrs, opdef.num_inputs, in_types, frozen, out, ())
    if len(_INFERRED) >= _INFERRED_MAX:
        _INFERRED.clear()
    _INFERRED[key] = (out, stamp)
    return out_types, stamp


def stamp_holds(node) -> bool:
    """Whether ``node``'s stamp still describes it: the same OpDef (rule and schema) registered under
    its op name, equal input and result types, equal attributes."""
    stamp = node.type_stamp
    if stamp is None:
        return False
    opdef, rule, schema, num_inputs, in_types, frozen, out_types, _ = stamp
    if (_REGISTRY.get(node.op) is not opdef or opdef.type_rule is not rule or opdef.attrs is not schema
            or opdef.num_inputs != num_inputs):
        return False
    inputs, outputs = node.inputs, node.outputs
    if len(inputs) != len(in_types) or len(outputs) != len(out_types):
        return False
    for v, t in zip(inputs, in_types):
        if v.type is not t and v.type != t:
            return False
    for v, t in zip(outputs, out_types):
        if v.type is not t and v.type != t:
            return False
    return _freeze_attrs(node.attrs)[0] == frozen
