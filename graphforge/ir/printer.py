"""The stable text format of the IR (read back by :mod:`graphforge.ir.parser`).

    graph mlp(%x: f32[batch,784]) {
      param %layer1.weight: f32[128,784]
      %0: f32[batch,128] = linear(%x, %layer1.weight, %layer1.bias) {activation="relu"} @layer1 (mlp.py:12)
      return %0 as logits
    }

Anonymous values are numbered in order of definition, so printing is canonical: two graphs with
the same structure print the same text.
"""
from __future__ import annotations

import json
import math
import re

import numpy as np

from .. import dtypes as _dt
from .dims import check_dim, is_dim_text
from .graph import Graph, Value

__all__ = ["print_graph", "format_attr_value", "format_value_name", "region_names"]


def _format_scalar(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        f = float(x)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        text = repr(f)
        return text
    raise TypeError(f"not a scalar: {x!r}")


def _shown_attrs(node) -> dict:
    """The node's attributes minus those its op declares ``elide_default`` that hold the default."""
    if not node.attrs:
        return node.attrs
    from ..ops.registry import lookup_op  # (a function-level import: ops build on the IR)

    opdef = lookup_op(node.op)
    if opdef is None:
        return node.attrs
    return {k: v for k, v in node.attrs.items()
            if not (k in opdef.attrs and opdef.attrs[k].elide_default and type(v) is type(opdef.attrs[k].default)
                    and v == opdef.attrs[k].default)}


def format_attr_value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, np.ndarray):
        dtype = _dt.from_numpy_dtype(value.dtype)
        flat = value.reshape(-1)
        if dtype == "bool":
            items = ["true" if b else "false" for b in flat]
        elif _dt.is_string(dtype):  # always quoted, so no element reads back as a symbolic dim or keyword
            items = [json.dumps(str(x)) for x in flat]
        elif _dt.is_float(dtype):
            items = [_format_scalar(float(x)) for x in flat.astype(np.float64)]
        else:
            items = [str(int(x)) for x in flat]
        shape = ",".join(str(d) for d in value.shape)
        return f"tensor<{_dt.short_name(dtype)}[{shape}]>[{', '.join(items)}]"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_list_item(v) for v in value) + "]"
    return _format_scalar(value)


def _format_list_item(item) -> str:
    # Inside lists, strings are symbolic dims (bare); quoted strings are written as lists of str attrs.
    if isinstance(item, str) and _is_dim_text(item):
        return item
    return format_attr_value(item)


_KEYWORDS = ("true", "false", "none", "inf", "nan")


def _is_dim_text(text: str) -> bool:
    # Words the parser reads as literals are quoted so they come back as strings; a symbolic dim
    # expression ("seq-1", "max(a,b)") is printed bare only in its canonical spelling.
    if not text or text in _KEYWORDS:
        return False
    if all(c.isalnum() or c == "_" for c in text):
        return not text[0].isdigit()
    return is_dim_text(text) and check_dim(text) == text


_BARE_OUTPUT_NAME = re.compile(r"[\w.:]+")
_BARE_GRAPH_NAME = re.compile(r"[\w.<>\-]+")


def _maybe_quote(name: str, bare: re.Pattern) -> str:
    """Names that the parser reads bare are printed bare, others as a JSON string."""
    return name if bare.fullmatch(name) else json.dumps(name)


def format_value_name(value: Value, numbering: dict[int, int]) -> str:
    if value.name is not None:
        return "%" + value.name
    return f"%{numbering[id(value)]}"


def region_names(node) -> list[str]:
    """The names regions of ``node`` are printed with (the op's ``OpDef.regions``; ``region{k}``
    for an op the registry does not know)."""
    from ..ops.registry import lookup_op

    opdef = lookup_op(node.op)
    names = list(opdef.regions) if opdef is not None else []
    return [names[k] if k < len(names) else f"region{k}" for k in range(len(node.regions))]


def _number(block, numbering: dict[int, int]) -> None:
    # Anonymous values are numbered in print order: a node's results, then its regions' arguments
    # and nodes, depth first.
    for value in block.arguments:
        if value.name is None:
            numbering[id(value)] = len(numbering)
    for node in block:
        for out in node.outputs:
            if out.name is None:
                numbering[id(out)] = len(numbering)
        for region in node.regions:
            _number(region, numbering)


def print_graph(graph: Graph) -> str:
    numbering: dict[int, int] = {}
    _number(graph.body, numbering)

    def name(v: Value) -> str:
        try:
            return format_value_name(v, numbering)
        except KeyError:
            return f"%<undefined:{v!r}>"

    lines = []
    args = ", ".join(f"{name(v)}: {v.type}" for v in graph.inputs)
    lines.append(f"graph {_maybe_quote(graph.name, _BARE_GRAPH_NAME)}({args}) {{")
    for pname, v in graph.param_values.items():
        lines.append(f"  {v.kind} %{pname}: {v.type}")
    _print_block(graph.body, name, lines, "  ")
    rets = ", ".join(f"{name(o)} as {_maybe_quote(n, _BARE_OUTPUT_NAME)}" for o, n in zip(graph.outputs, graph.output_names))
    lines.append(f"  return {rets}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _print_block(block, name, lines: list, indent: str) -> None:
    for node in block:
        ins = ", ".join(name(i) for i in node.inputs)
        text = f"{node.op}({ins})"
        if node.outputs:
            text = ", ".join(f"{name(o)}: {o.type}" for o in node.outputs) + " = " + text
        text = indent + text
        attrs = _shown_attrs(node)
        if attrs:
            text += " {" + ", ".join(f"{k}={format_attr_value(v)}" for k, v in sorted(attrs.items())) + "}"
        if node.scope:
            text += f" @{node.scope}"
        if node.loc:
            text += f" ({node.loc})"
        lines.append(text)
        # A region: its name and arguments on one line, its nodes indented below, ending in yield.
        for rname, region in zip(region_names(node), node.regions):
            rargs = ", ".join(f"{name(a)}: {a.type}" for a in region.arguments)
            lines.append(f"{indent}  {rname}({rargs}):")
            _print_block(region, name, lines, indent + "    ")
