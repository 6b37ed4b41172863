"""String tensors' own ops (ONNX STRING): ``string_normalizer``, ``string_concat``, ``string_split`` and
``regex_full_match``.

A ``string`` tensor (``str[...]`` in the IR, ``dtypes.STRING``) holds text as a NumPy object array of
Python ``str``. Besides these ops, the ops that only move, select or compare data take string tensors
unchanged (``registry.STRING_OPS``: concat, gather, reshape, squeeze/unsqueeze, transpose, slice, equal,
where, constant, ...; every other op refuses them when a node is built) and ``cast`` converts to and from
them (ONNX Cast: numbers parse from / print to their decimal text, :func:`cast_string`).

Back ends: the reference interpreter and onnxruntime (native StringNormalizer, StringConcat, StringSplit,
RegexFullMatch; opset 20 for the last three) run them. XLA has no string type, so the JAX back end
refuses any graph holding a string tensor with an ``UnsupportedOpError`` naming the op
(runtimes/jax/strings.py); ``gf.run(..., backend="reference"|"onnxruntime")`` runs it.

Data-dependent sizes use the design of ``ops/data_dependent.py``: ``string_normalizer`` with stopwords
drops elements, ``string_split``'s last axis is the largest number of pieces; both results' sizes are a
fresh symbolic dim named by the node's ``length`` attribute, bound by running the graph.

Known back-end difference: with an empty delimiter (whitespace) and ``maxsplit``, onnxruntime strips
trailing whitespace from the unsplit remainder (``" y z "`` → ``["y", "z"]``); ONNX's reference, Python's
``str.split`` and graphforge's reference keep it (``["y", "z "]``).

None of these ops is differentiable.
"""
from __future__ import annotations

import re

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError, ShapeError
from ..ir.types import TensorType
from ..trace.tensor import apply
from .common import numel
from ._shapes import broadcast_shapes
from .registry import NOT_DIFFERENTIABLE, STRING_OPS, Attr, OpDef, Sample, register_op

from . import data_dependent as _data_dependent

__all__ = ["string_normalizer", "string_concat", "string_split", "regex_full_match", "cast_string"]

_S = _dt.STRING
STRING_OPS.update({"string_normalizer", "string_concat", "string_split", "regex_full_match"})


def _require_string(t: TensorType, op: str, what: str = "input") -> None:
    if t.dtype != _S:
        raise DTypeError(f"{op}: the {what} must be a string tensor, got {t}",
                         hint="cast it to 'string' first (gf.cast(x, 'string'))")


def _strings(values, shape) -> np.ndarray:
    """An object array of ``str`` of ``shape`` from a flat sequence (np.array would make ``<U`` arrays)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out.reshape(shape)


def _length_attr(attrs, op) -> str:
    name = attrs.get("length")
    if not isinstance(name, str) or not name.isidentifier():
        raise ShapeError(f"{op}: length must name the data-dependent symbolic dim (an identifier), got {name!r}")
    return name


# ---- string_normalizer (ONNX StringNormalizer) ------------------------------------------------

def _normalizer_rule(ts, attrs):
    (x,) = ts
    _require_string(x, "string_normalizer")
    if x.rank not in (1, 2) or (x.rank == 2 and x.shape[0] != 1):
        raise ShapeError(f"string_normalizer: the input must be [C] or [1, C] (ONNX StringNormalizer), got {x}")
    if not attrs["stopwords"]:
        return [x]
    n = _length_attr(attrs, "string_normalizer")  # elements equal to a stopword are dropped
    return [TensorType(x.shape[:-1] + (n,), _S)]


def _normalizer_ref(xs, attrs, env=None):
    x = xs[0]
    action, sensitive = attrs["case_change_action"], attrs["is_case_sensitive"]
    change = {"LOWER": str.lower, "UPPER": str.upper, "NONE": lambda s: s}[action]
    words = [str(s) for s in x.reshape(-1)]
    stops = set(attrs["stopwords"])
    if stops:
        if sensitive:
            words = [w for w in words if w not in stops]
        else:  # case-insensitive: compare case-folded
            folded = {s.casefold() for s in stops}
            words = [w for w in words if w.casefold() not in folded]
        if not words:  # ONNX: everything filtered out gives one empty string
            words = [""]
    words = [change(w) for w in words]
    return [_strings(words, x.shape[:-1] + (len(words),))]


register_op(OpDef(
    name="string_normalizer", family="strings", num_inputs=(1, 1),
    attrs={"case_change_action": Attr("str", "NONE", choices=("LOWER", "UPPER", "NONE")),
           "is_case_sensitive": Attr("bool", False), "stopwords": Attr("any", ()),
           "locale": Attr("str", ""), "length": Attr("str", None, optional=True)},
    type_rule=_normalizer_rule, reference=_normalizer_ref, flops=lambda i, o, a: 0, vjp=NOT_DIFFERENTIABLE,
    doc="ONNX StringNormalizer: drop the elements equal to a stopword (case-folded unless is_case_sensitive), "
        "then change case; nothing left gives ['']. With stopwords the result length is the data-dependent "
        "symbol named by length.",
    samples=[
        Sample([TensorType(("n",), _S)], attrs={"case_change_action": "UPPER"}, bind={"n": 3},
               domain=[_strings(["monday", "Tuesday", "x y"], (3,))], grad=False, note="symbolic, no stopwords"),
        Sample([TensorType((1, 4), _S)], attrs={"stopwords": ["monday"], "length": "kept", "case_change_action": "LOWER"},
               bind={"kept": 2}, domain=[_strings(["Monday", "tuesday", "monday", "Friday"], (1, 4))], grad=False,
               note="case-insensitive stopword"),
        Sample([TensorType((2,), _S)], attrs={"stopwords": ["monday"], "length": "kept", "is_case_sensitive": True},
               bind={"kept": 1}, domain=[_strings(["monday", "monday"], (2,))], grad=False, note="all dropped: ['']"),
    ],
))


def string_normalizer(x, case_change_action="NONE", is_case_sensitive=False, stopwords=(), locale=""):
    """ONNX StringNormalizer on a ``[C]`` or ``[1, C]`` string tensor.

    Args:
        x: the string tensor.
        case_change_action: ``"LOWER"``, ``"UPPER"`` or ``"NONE"``.
        is_case_sensitive: whether stopwords match case-sensitively.
        stopwords: elements equal to one of these are removed (the result length is then data-dependent).
        locale: kept for ONNX export; case changes are Unicode's (Python ``str.lower``/``upper``).

    Returns:
        The normalized string tensor.

    Raises:
        DTypeError: ``x`` is not a string tensor.
        ShapeError: ``x`` is not ``[C]`` or ``[1, C]``, or an unknown ``case_change_action``.

    Example:
        ```python
        g = gf.trace(lambda x: gf.string_normalizer(x, case_change_action="LOWER", stopwords=("the",)),
                     gf.TensorSpec((3,), "string"))
        (y,) = gf.run(g, {"x": np.array(["The", "Cat", "the"], object)}, backend="reference")  # ["cat"]
        ```
    """

    stopwords = [str(s) for s in stopwords]
    extra = {"length": _data_dependent.fresh_length("kept")} if stopwords else {}
    return apply("string_normalizer", x, case_change_action=case_change_action,
                 is_case_sensitive=bool(is_case_sensitive), stopwords=stopwords, locale=locale, **extra)


# ---- string_concat (ONNX StringConcat) --------------------------------------------------------

def _concat_rule(ts, attrs):
    a, b = ts
    _require_string(a, "string_concat", "first input")
    _require_string(b, "string_concat", "second input")
    return [TensorType(broadcast_shapes(a.shape, b.shape), _S)]


def _concat_ref(xs, attrs, env=None):
    a, b = np.broadcast_arrays(*xs)
    return [_strings([str(u) + str(v) for u, v in zip(a.reshape(-1), b.reshape(-1))], a.shape)]


register_op(OpDef(
    name="string_concat", family="strings", num_inputs=(2, 2), type_rule=_concat_rule, reference=_concat_ref,
    flops=lambda i, o, a: 0, vjp=NOT_DIFFERENTIABLE, elementwise=True,
    doc="ONNX StringConcat: elementwise concatenation with NumPy broadcasting.",
    samples=[
        Sample([TensorType((2, 2), _S), TensorType((2, 2), _S)],
               domain=[_strings(["a", "bc", "", "é"], (2, 2)), _strings(["x", "", "y", "ü"], (2, 2))], grad=False),
        Sample([TensorType(("batch", 3), _S), TensorType((), _S)], bind={"batch": 2},
               domain=[_strings(["a", "b", "c", "d", "e", "f"], (2, 3)), _strings(["!"], ())], grad=False,
               note="broadcast scalar"),
    ],
))


def string_concat(a, b):
    """Elementwise ``a + b`` of two string tensors (broadcasting).

    Args:
        a: a string tensor.
        b: a string tensor.

    Returns:
        The concatenated strings.

    Raises:
        DTypeError: ``a`` or ``b`` is not a string tensor.
        ShapeError: the shapes do not broadcast.

    Example:
        ```python
        g = gf.trace(gf.string_concat, gf.TensorSpec((2,), "string"), gf.TensorSpec((2,), "string"))
        (y,) = gf.run(g, {"a": np.array(["ab", "c"], object), "b": np.array(["x", "yz"], object)},
                      backend="reference")  # ["abx", "cyz"]
        ```
    """
    return apply("string_concat", a, b)


# ---- string_split (ONNX StringSplit) ----------------------------------------------------------

def _split_rule(ts, attrs):
    (x,) = ts
    _require_string(x, "string_split")
    if attrs["maxsplit"] is not None and attrs["maxsplit"] < 0:
        raise ShapeError(f"string_split: maxsplit must be >= 0, got {attrs['maxsplit']}")
    n = _length_attr(attrs, "string_split")
    return [TensorType(tuple(x.shape) + (n,), _S), TensorType(x.shape, "int64")]


def _split_ref(xs, attrs, env=None):
    x = xs[0]
    delim = attrs["delimiter"] or None  # ONNX: an empty delimiter splits on runs of whitespace
    maxsplit = -1 if attrs["maxsplit"] is None else attrs["maxsplit"]
    pieces = [str(s).split(delim, maxsplit) for s in x.reshape(-1)]
    width = max((len(p) for p in pieces), default=0)
    flat = [w for p in pieces for w in p + [""] * (width - len(p))]
    counts = np.array([len(p) for p in pieces], dtype=np.int64).reshape(x.shape)
    return [_strings(flat, tuple(x.shape) + (width,)), counts]


register_op(OpDef(
    name="string_split", family="strings", num_inputs=(1, 1),
    attrs={"delimiter": Attr("str", ""), "maxsplit": Attr("int", None, optional=True), "length": Attr("str")},
    type_rule=_split_rule, reference=_split_ref, flops=lambda i, o, a: 0, vjp=NOT_DIFFERENTIABLE,
    doc="ONNX StringSplit: each string split on delimiter (empty: runs of whitespace) at most maxsplit times; "
        "pieces padded with '' to the data-dependent width named by length, and the piece counts.",
    samples=[
        Sample([TensorType(("n",), _S)], attrs={"delimiter": ".", "length": "pieces"}, bind={"n": 2, "pieces": 3},
               domain=[_strings(["a.b.c", "d"], (2,))], grad=False, note="symbolic"),
        Sample([TensorType((2, 2), _S)], attrs={"maxsplit": 1, "length": "pieces"}, bind={"pieces": 2},
               domain=[_strings(["a  b c", "", "x", " y z"], (2, 2))], grad=False, note="whitespace, maxsplit"),
    ],
))


def string_split(x, delimiter="", maxsplit=None):
    """ONNX StringSplit: split every string of ``x``.

    Args:
        x: a string tensor.
        delimiter: the separator; ``""`` splits on runs of whitespace.
        maxsplit: at most this many splits per string (None: no limit).

    Returns:
        ``(pieces, counts)``: pieces of shape ``x.shape + (width,)`` padded with ``""`` (width = the largest
        count, a data-dependent dim) and the int64 number of pieces of each string.

    Raises:
        DTypeError: ``x`` is not a string tensor.

    Example:
        ```python
        g = gf.trace(lambda x: gf.string_split(x, ","), gf.TensorSpec((2,), "string"))
        pieces, counts = gf.run(g, {"x": np.array(["a,b,c", "d"], object)}, backend="reference")
        # pieces == [["a", "b", "c"], ["d", "", ""]], counts == [3, 1]
        ```
    """

    return apply("string_split", x, delimiter=delimiter, maxsplit=maxsplit, length=_data_dependent.fresh_length("pieces"))


# ---- regex_full_match (ONNX RegexFullMatch) ---------------------------------------------------

def _regex_rule(ts, attrs):
    (x,) = ts
    _require_string(x, "regex_full_match")
    try:
        re.compile(attrs["pattern"])
    except re.error as exc:
        raise DTypeError(f"regex_full_match: invalid pattern {attrs['pattern']!r}: {exc}") from None
    return [TensorType(x.shape, "bool")]


def _regex_ref(xs, attrs, env=None):
    x = xs[0]
    rx = re.compile(attrs["pattern"])
    flat = [rx.fullmatch(str(s)) is not None for s in x.reshape(-1)]
    return [np.array(flat, dtype=bool).reshape(x.shape)]


register_op(OpDef(
    name="regex_full_match", family="strings", num_inputs=(1, 1), attrs={"pattern": Attr("str")},
    type_rule=_regex_rule, reference=_regex_ref, flops=lambda i, o, a: numel(o[0]), vjp=NOT_DIFFERENTIABLE,
    elementwise=True,
    doc="ONNX RegexFullMatch: whether each string matches pattern entirely (RE2 syntax; the reference uses "
        "Python's re, which agrees on RE2's common subset).",
    samples=[
        Sample([TensorType(("n",), _S)], attrs={"pattern": r"[a-z]+\d*"}, bind={"n": 4},
               domain=[_strings(["abc", "abc1", "1abc", ""], (4,))], grad=False, note="symbolic"),
        Sample([TensorType((2, 2), _S)], attrs={"pattern": r"(\W|^)[\w.\-]{0,25}@(yahoo|gmail)\.com(\W|$)"},
               domain=[_strings(["account@gmail.com", "a@yahoo.com", "x@hotmail.com", "@gmail.com"], (2, 2))],
               grad=False),
    ],
))


def regex_full_match(x, pattern):
    """Whether each string of ``x`` matches ``pattern`` entirely (ONNX RegexFullMatch).

    Args:
        x: a string tensor.
        pattern: a regular expression (RE2 syntax).

    Returns:
        A bool tensor of ``x``'s shape.
    """
    return apply("regex_full_match", x, pattern=pattern)


# ---- cast to and from string (the reference of ``cast``, elementwise.py) -----------------------

def cast_string(x: np.ndarray, dst: str) -> np.ndarray:
    """ONNX Cast with a string side. To ``string``: NumPy's text of each number (ONNX's reference:
    ``x.astype(str)``; floats in their shortest round-trip form, ``"30.0"``, ``"1e-05"``; onnxruntime writes
    integral floats without ``.0``), bools as ``"1"``/``"0"``. From ``string``:
    an integer literal parses exactly when ``dst`` is an integer type; anything else parses as float64
    (``"1e-5"``, ``"+INF"``/``"-inf"``/``"NaN"`` case-insensitively) and is returned as float64 for the
    numeric cast rules to finish (truncation toward zero, saturation, ...). Text that is no number is a
    ``DTypeError`` naming it (ONNX leaves it undefined)."""
    if _dt.is_string(dst):
        if x.dtype.kind == "O":
            return x
        if x.dtype == np.bool_:  # as the numbers 1 and 0 (so "1"/"0" cast back to true/false), like onnxruntime
            x = x.astype(np.int64)
        flat = x.reshape(-1).astype(np.float32) if x.dtype in _NARROW else x.reshape(-1)
        return _strings([str(v) for v in flat.astype(np.str_)], x.shape)
    words = [str(s).strip() for s in x.reshape(-1)]
    if _dt.is_int(dst) or _dt.is_bool(dst):
        try:  # integer literals exactly (int64 beyond 2**53 would not survive float64)
            ints = [int(w) for w in words]
            return np.array(ints, dtype=np.int64 if _dt.is_int(dst) else bool).reshape(x.shape).astype(
                _dt.to_numpy_dtype(dst))
        except (ValueError, OverflowError):
            pass
    out = np.empty(len(words), dtype=np.float64)
    for i, w in enumerate(words):
        try:
            out[i] = float(w)
        except ValueError:
            raise DTypeError(f"cast: the string {w!r} is not a number, so it has no {dst} value") from None
    return out.reshape(x.shape)


_NARROW = tuple(_dt.to_numpy_dtype(d) for d in ("float16", "bfloat16") + _dt.FLOAT8_DTYPES + _dt.FLOAT4_DTYPES)
