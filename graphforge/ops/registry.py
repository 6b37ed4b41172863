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

from ..errors import GraphforgeError, ShapeError, UnsupportedOpError
from ..ir.types import TensorType

__all__ = ["Attr", "REQUIRED", "NOT_DIFFERENTIABLE", "OpDef", "Sample", "register_op", "get_op",
           "has_op", "all_ops", "check_attrs", "infer_types", "unregister_op"]


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()


class _NotDifferentiable:
    """The explicit decision that an op has no gradient (integer/boolean results, comparisons)."""

    def __repr__(self):
        return "NOT_DIFFERENTIABLE"


NOT_DIFFERENTIABLE = _NotDifferentiable()

_ATTR_KINDS = ("int", "float", "bool", "str", "ints", "floats", "dims", "dtype", "tensor", "any")


@dataclass(frozen=True)
class Attr:
    """One attribute: its kind, default (``REQUIRED`` if none), allowed values and optionality."""

    kind: str
    default: Any = REQUIRED
    choices: tuple | None = None
    optional: bool = False  # None is accepted

    def __post_init__(self):
        if self.kind not in _ATTR_KINDS:
            raise ValueError(f"unknown attribute kind {self.kind!r}")


@dataclass
class Sample:
    """A conformance sample: input types (symbolic dims allowed), attrs, and how to fill the inputs.

    ``bind`` gives concrete values to the symbolic dims; ``domain`` per input is one of ``"any"``,
    ``"positive"``, ``"unit"`` (in (-1, 1)), ``"nonzero"``, ``"int:LO:HI"``, ``"bool"``, or a fixed
    NumPy array. ``grad`` False skips the gradient checks for this sample.
    """

    inputs: Sequence[TensorType]
    attrs: dict = field(default_factory=dict)
    bind: dict = field(default_factory=dict)
    domain: Sequence[Any] | None = None
    grad: bool = True
    note: str = ""


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

    @property
    def differentiable(self) -> bool:
        return self.vjp is not NOT_DIFFERENTIABLE and self.vjp is not None


_REGISTRY: dict[str, OpDef] = {}


def register_op(opdef: OpDef, *, replace: bool = False) -> OpDef:
    if opdef.name in _REGISTRY and not replace:
        raise GraphforgeError(f"op {opdef.name!r} is already registered; pass replace=True to override it")
    _REGISTRY[opdef.name] = opdef
    return opdef


def unregister_op(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedOpError(f"unknown op {name!r}", ops=[name]) from None


def has_op(name: str) -> bool:
    return name in _REGISTRY


def all_ops() -> dict[str, OpDef]:
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
    if kind == "dims":
        return isinstance(value, (list, tuple)) and all(_check_kind("int", v) or isinstance(v, str) for v in value)
    if kind == "tensor":
        return isinstance(value, np.ndarray)
    return False


def check_attrs(opdef: OpDef, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Validate attributes against the schema, fill defaults, normalise lists; raise ShapeError."""
    unknown = sorted(set(attrs) - set(opdef.attrs))
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
        elif spec.kind in ("ints", "dims"):
            value = [v if isinstance(v, str) else int(v) for v in value]
        elif spec.kind == "floats":
            value = [float(v) for v in value]
        elif spec.kind == "dtype":
            from ..dtypes import canonical_dtype
            value = canonical_dtype(value)
        if spec.choices is not None and value not in spec.choices:
            raise ShapeError(f"attribute {key}={value!r} must be one of {', '.join(map(repr, spec.choices))}")
        out[key] = value
    return out


def infer_types(opdef: OpDef, input_types: list[TensorType], attrs: dict) -> list[TensorType]:
    lo, hi = opdef.num_inputs
    n = len(input_types)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo}..{hi if hi is not None else ''}"
        raise ShapeError(f"takes {want} inputs, got {n}")
    return list(opdef.type_rule(list(input_types), attrs))
