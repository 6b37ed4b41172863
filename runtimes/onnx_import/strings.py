"""Importers for ONNX's string ops onto ``graphforge/ops/strings.py``: StringNormalizer, StringConcat,
StringSplit, RegexFullMatch (string tensors themselves import as the ``string`` dtype)."""
from __future__ import annotations

from graphforge.ops.data_dependent import fresh_length

from .importer import attrs_of, importer, unsupported

__all__: list[str] = []


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


@importer("StringNormalizer")
def _string_normalizer(ctx, node):
    a = attrs_of(node)
    action = _text(a.get("case_change_action", "NONE"))
    if action not in ("LOWER", "UPPER", "NONE"):
        unsupported(node, f"case_change_action={action!r} (expected LOWER, UPPER or NONE)")
    stopwords = [_text(w) for w in a.get("stopwords", [])]
    extra = {"length": fresh_length("kept")} if stopwords else {}
    return [ctx.emit("string_normalizer", [ctx.input(node, 0)], case_change_action=action,
                     is_case_sensitive=bool(int(a.get("is_case_sensitive", 0))), stopwords=stopwords,
                     locale=_text(a.get("locale", "")), **extra)]


@importer("StringConcat")
def _string_concat(ctx, node):
    return [ctx.emit("string_concat", [ctx.input(node, 0), ctx.input(node, 1)])]


@importer("StringSplit")
def _string_split(ctx, node):
    a = attrs_of(node)
    maxsplit = int(a["maxsplit"]) if "maxsplit" in a else None
    pieces, counts = ctx.emit_n("string_split", [ctx.input(node, 0)], delimiter=_text(a.get("delimiter", "")),
                                maxsplit=maxsplit, length=fresh_length("pieces"))
    return [pieces, counts]


@importer("RegexFullMatch")
def _regex_full_match(ctx, node):
    return [ctx.emit("regex_full_match", [ctx.input(node, 0)], pattern=_text(attrs_of(node)["pattern"]))]
