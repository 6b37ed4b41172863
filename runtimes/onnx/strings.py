"""ONNX lowerings of the string ops (``graphforge/ops/strings.py``): StringNormalizer (opset 10),
StringConcat, StringSplit and RegexFullMatch (opset 20; below it they are not expressible)."""
from __future__ import annotations

from .lower import NotExpressible, lowers
from .math_ops import MIN_OPSET

__all__ = ["string_gather"]

_ONNX_OP = {"string_concat": "StringConcat", "string_split": "StringSplit", "regex_full_match": "RegexFullMatch"}
# ops first defined after opset 17 (the table the op-table tests read, shared with math_ops)
MIN_OPSET.update({op: 20 for op in _ONNX_OP})
# onnxruntime's StringNormalizer builds a C++ std::locale from the attribute, and ONNX's default
# (en_US.UTF-8) is missing on many machines (the session then fails to load). graphforge's locale ""
# means Unicode case mapping (Python's str.upper/lower), which is what C.UTF-8 gives.
DEFAULT_LOCALE = "C.UTF-8"


def _need(ctx, op: str) -> None:
    if ctx.opset < MIN_OPSET[op]:
        raise NotExpressible(f"{_ONNX_OP[op]} needs opset >= {MIN_OPSET[op]} (exporting at {ctx.opset})")


@lowers("string_normalizer")
def _string_normalizer(ctx, args, attrs):
    stopwords = list(attrs["stopwords"])
    return [ctx.op("StringNormalizer", [args[0]], case_change_action=attrs["case_change_action"],
                   is_case_sensitive=int(attrs["is_case_sensitive"]), stopwords=stopwords or None,
                   locale=attrs["locale"] or DEFAULT_LOCALE)]


@lowers("string_concat")
def _string_concat(ctx, args, attrs):
    _need(ctx, "string_concat")
    return [ctx.op("StringConcat", list(args))]


@lowers("string_split")
def _string_split(ctx, args, attrs):
    _need(ctx, "string_split")
    extra = {"delimiter": attrs["delimiter"]} if attrs["delimiter"] else {}
    return ctx.op("StringSplit", [args[0]], outputs=2, maxsplit=attrs["maxsplit"], **extra)


@lowers("regex_full_match")
def _regex_full_match(ctx, args, attrs):
    _need(ctx, "regex_full_match")
    return [ctx.op("RegexFullMatch", [args[0]], pattern=attrs["pattern"])]


def string_gather(ctx, args, axis: int) -> str:
    """``gather`` of a string tensor on an axis other than the last, as GatherND on that axis moved first.

    onnxruntime (1.32) gathers string rows wrongly: each picked slice keeps only its first element and the
    rest come back as ``""`` (numeric types and the last axis are right). GatherND copies whole slices."""
    x, idx = args
    xt, it = ctx.in_types
    rank, q = xt.rank, it.rank
    if axis:
        x = ctx.op("Transpose", [x], perm=[axis] + [d for d in range(rank) if d != axis])
    if it.dtype != "int64":
        idx = ctx.cast(idx, "int64")
    idx = ctx.reshape(idx, it.shape, list(it.shape) + [1])
    y = ctx.op("GatherND", [x, idx])  # (*idx, *x.shape without axis)
    if axis:  # the index dims go back to where the axis was
        y = ctx.op("Transpose", [y], perm=list(range(q, q + axis)) + list(range(q)) + list(range(q + axis, q + rank - 1)))
    return y
