"""Read the text IR back into a Graph (``gf.parse``). Errors name the line and column."""
from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from .. import dtypes as _dt
from ..errors import GraphforgeError, ParseError, VerifyError
from .dims import is_dim_text, parse_dim
from .graph import YIELD, Block, Graph, Node, Value
from .types import TensorType

__all__ = ["parse"]

_NAME = r"[\w.\-/]+"
_OUTPUT_NAME = r"[\w.:]+"
_STRING = r'"(?:[^"\\]|\\.)*"'
_HEADER = re.compile(rf"^graph\s+({_STRING}|[\w.<>\-]+)\s*\((.*)\)\s*\{{\s*$")
_PARAM = re.compile(rf"^(param|buffer|const)\s+%({_NAME})\s*:\s*(.+)$")
_TYPE = re.compile(r"^([a-z0-9]+)\[([^\]]*)\]$")
_REGION = re.compile(r"^([A-Za-z_]\w*)\s*\((.*)\)\s*:\s*$")


class _Cursor:
    """A character cursor over one line, for the attribute and operand grammar."""

    def __init__(self, text: str, lineno: int):
        self.text, self.pos, self.lineno = text, 0, lineno

    def error(self, message: str) -> ParseError:
        return ParseError(f"line {self.lineno}, column {self.pos + 1}: {message}\n    {self.text}\n    {' ' * self.pos}^")

    def skip(self):
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, token: str):
        self.skip()
        if not self.text.startswith(token, self.pos):
            raise self.error(f"expected {token!r}")
        self.pos += len(token)

    def accept(self, token: str) -> bool:
        self.skip()
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def match(self, pattern: str) -> str:
        self.skip()
        m = re.compile(pattern).match(self.text, self.pos)
        if not m:
            raise self.error(f"expected {pattern}")
        self.pos = m.end()
        return m.group(0)

    def at_end(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)


def _parse_type(text: str, cur: _Cursor) -> TensorType:
    m = _TYPE.match(text.strip())
    if not m:
        raise cur.error(f"malformed tensor type {text.strip()!r} (expected like f32[batch,128])")
    try:
        dtype = _dt.from_short_name(m.group(1))
        dims = [parse_dim(d) for d in _split_dims(m.group(2))] if m.group(2).strip() else []
        return TensorType(tuple(dims), dtype)
    except GraphforgeError as exc:
        raise cur.error(exc.detail) from None


def _split_dims(text: str) -> list[str]:
    """The dims of ``f32[...]``: commas inside ``max(a,b)`` do not separate dims."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _dim_token(cur: _Cursor) -> str | None:
    """The symbolic dim expression at the cursor (``seq-1``, ``2*seq``, ``max(a,b)``), or None."""
    text, pos, depth = cur.text, cur.pos, 0
    end = pos
    while end < len(text):
        c = text[end]
        if c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                break
            depth -= 1
        elif c in ",]}" and depth == 0:
            break
        elif not (c.isalnum() or c in "_*+-/ " or (c == "," and depth)):
            return None
        end += 1
    token = text[pos:end].strip()
    if token in ("inf", "-inf", "nan") or not is_dim_text(token):
        return None
    cur.pos = pos + len(text[pos:end].rstrip())
    return token


def _read_type(cur: _Cursor) -> TensorType:
    text = cur.match(r"[a-z0-9]+\[[^\]]*\]")
    return _parse_type(text, cur)


_NUMBER = r"-?(?:inf|nan|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"


def _read_scalar(cur: _Cursor) -> Any:
    cur.skip()
    if cur.accept("true"):
        return True
    if cur.accept("false"):
        return False
    if cur.accept("none"):
        return None
    if cur.peek() == '"':
        m = re.compile(_STRING).match(cur.text, cur.pos)
        if not m:
            raise cur.error("unterminated string")
        text = _json_string(cur, m.group(0))
        cur.pos = m.end()
        return text
    token = _dim_token(cur)
    if token is not None:  # a symbolic dim inside a list
        try:
            return parse_dim(token)
        except GraphforgeError as exc:
            raise cur.error(exc.detail) from None
    m = re.compile(_NUMBER).match(cur.text, cur.pos)
    if m and not (cur.text[m.end():m.end() + 1].isalnum() or cur.text[m.end():m.end() + 1] in "_*"):
        cur.pos = m.end()
        token = m.group(0)
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        return float(token)
    m = re.compile(r"[A-Za-z_][A-Za-z0-9_*]*").match(cur.text, cur.pos)
    if m:  # a symbolic dim inside a list
        cur.pos = m.end()
        return parse_dim(m.group(0))
    raise cur.error("expected an attribute value")


MAX_ATTR_DEPTH = 64
"""Deepest bracket nesting of an attribute value; IR text is untrusted input, and unbounded nesting
would exhaust Python's recursion limit instead of giving a ParseError."""


def _read_value(cur: _Cursor, depth: int = 0) -> Any:
    if cur.peek() == "[":
        if depth >= MAX_ATTR_DEPTH:
            raise cur.error(f"attribute value nested deeper than {MAX_ATTR_DEPTH} brackets")
        cur.expect("[")
        items = []
        if not cur.accept("]"):
            while True:
                items.append(_read_value(cur, depth + 1))
                if cur.accept("]"):
                    break
                cur.expect(",")
        return items
    if cur.accept("tensor<"):
        ttype = _read_type(cur)
        cur.expect(">")
        items = _read_value(cur, depth + 1)
        if not isinstance(items, list):
            raise cur.error("expected the tensor's flat element list")
        if not ttype.is_static:
            raise cur.error("a tensor literal needs a static shape")
        np_dtype = _dt.to_numpy_dtype(ttype.dtype)
        size = int(np.prod(ttype.shape, dtype=np.int64))
        if len(items) != size:
            raise cur.error(f"tensor literal of type {ttype} has {len(items)} elements, expected {size}")
        arr = _tensor_literal(cur, items, ttype.dtype, np_dtype)
        return arr.reshape(ttype.shape)
    return _read_scalar(cur)


def _json_string(cur: _Cursor, token: str) -> str:
    try:
        return json.loads(token)
    except ValueError as exc:
        raise cur.error(f"malformed string {token}: {exc}") from None


def _tensor_literal(cur: _Cursor, items: list, dtype: str, np_dtype) -> np.ndarray:
    """The flat element list of a ``tensor<...>[...]`` literal as an array of ``dtype``, exactly."""
    if dtype == "bool":
        ok = all(isinstance(x, bool) for x in items)
    elif _dt.is_string(dtype):
        if not all(isinstance(x, str) for x in items):
            raise cur.error("tensor literal elements must all be quoted strings")
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out
    elif _dt.is_float(dtype):
        ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in items)
    else:
        ok = all(isinstance(x, int) and not isinstance(x, bool) for x in items)
        if ok and items:
            lo, hi = _dt.int_range(dtype)  # (np.iinfo does not know the 4-bit types)
            bad = [x for x in items if not lo <= x <= hi]
            if bad:
                raise cur.error(f"tensor literal element {bad[0]} does not fit in {dtype}")
    if not ok:
        raise cur.error(f"tensor literal elements must all be {dtype} values")
    try:
        if _dt.is_float(dtype):
            with np.errstate(over="ignore"):  # out of range rounds to inf, as the float would
                return np.array(items, dtype=np.float64).astype(np_dtype)
        return np.array(items, dtype=np_dtype)
    except (OverflowError, ValueError) as exc:
        raise cur.error(f"tensor literal of {dtype}: {exc}") from None


def _read_output_name(cur: _Cursor) -> str:
    if cur.peek() == '"':
        token = cur.match(_STRING)
        return _json_string(cur, token)
    return cur.match(_OUTPUT_NAME)


def _read_value_ref(cur: _Cursor, env: dict[str, Value]) -> Value:
    cur.expect("%")
    name = cur.match(_NAME)
    if name not in env:
        raise cur.error(f"use of undefined value %{name}")
    return env[name]


def parse(text: str, *, params: dict[str, np.ndarray] | None = None, verify: bool = True) -> Graph:
    """Parse IR text (as ``str(graph)`` prints it) into a Graph; the round trip is exact.

    Args:
        text: the IR text.
        params: parameter values by name (the text holds only their names and types); values for
            names the text does not declare are an error.
        verify: run ``graph.verify()`` on the result.

    Returns:
        The ``gf.Graph``.

    Raises:
        ParseError: malformed text (with line, column and a caret).
        VerifyError: well-formed text that breaks an IR invariant (``verify=False`` reads it anyway).

    Example:
        ```python
        g2 = gf.parse(str(g), params=g.params)
        assert str(g2) == str(g)
        ```
    """
    if not isinstance(text, str):
        raise ParseError(f"gf.parse expects IR text (str), got {type(text).__name__}")
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip() and not line.strip().startswith("#")]
    if not lines:
        raise ParseError("empty IR text: expected 'graph NAME(...) {'")
    lineno, header = lines[0]
    m = _HEADER.match(header.strip())
    if not m:
        raise ParseError(f"line {lineno}: expected 'graph NAME(%input: type, ...) {{', got {header.strip()!r}")
    graph_name = m.group(1)
    if graph_name.startswith('"'):
        graph_name = _json_string(_Cursor(header.strip(), lineno), graph_name)
    graph = Graph(graph_name)
    env: dict[str, Value] = {}
    cur = _Cursor(m.group(2), lineno)
    if not cur.at_end():
        while True:
            cur.expect("%")
            name = cur.match(_NAME)
            cur.expect(":")
            ttype = _read_type(cur)
            if name in env:
                raise cur.error(f"input %{name} defined twice")
            try:
                env[name] = graph.add_input(name, ttype)
            except VerifyError as exc:
                raise cur.error(exc.detail) from None
            if cur.at_end():
                break
            cur.expect(",")
    closed = False
    returned = 0
    body = lines[1:]
    i = 0
    while i < len(body):
        lineno, raw = body[i]
        i += 1
        line = raw.strip()
        if closed:
            raise ParseError(f"line {lineno}: text after the closing '}}'")
        if line == "}":
            closed = True
            continue
        if line.startswith("return"):
            cur = _Cursor(line[len("return"):], lineno)
            outs, names = [], []
            if not cur.at_end():
                while True:
                    outs.append(_read_value_ref(cur, env))
                    # Unnamed outputs get Graph.set_outputs' default names: output, output1, ...
                    default = f"output{len(names)}" if names else "output"
                    names.append(_read_output_name(cur) if cur.accept("as") else default)
                    if cur.at_end():
                        break
                    cur.expect(",")
            if returned:
                raise ParseError(f"line {lineno}: a second 'return' (the graph returned on line {returned})")
            returned = lineno
            graph.set_outputs(outs, names)
            continue
        pm = _PARAM.match(line)
        if pm:
            kind, name, type_text = pm.groups()
            if name in env:
                raise ParseError(f"line {lineno}: %{name} defined twice")
            ttype = _parse_type(type_text, _Cursor(line, lineno))
            try:
                env[name] = graph.add_param(name, ttype, None, kind)
            except VerifyError as exc:
                raise ParseError(f"line {lineno}: {exc.detail}") from None
            continue
        if _REGION.match(line):
            raise ParseError(f"line {lineno}: region header {line!r} follows no node that owns regions")
        node = _parse_node(_Cursor(line, lineno), env)
        if node.op == YIELD:
            raise ParseError(f"line {lineno}: 'yield' outside a region (the top level ends with 'return')")
        graph.append(node)
        i = _parse_regions(body, i, node, env)
    if not closed:
        raise ParseError(f"line {lines[-1][0]}: missing closing '}}'")
    if params:
        unknown = sorted(set(params) - set(graph.param_values))
        if unknown:
            raise ParseError(f"values given for parameters the IR does not declare: {', '.join(unknown)}")
        for name, array in params.items():
            array = np.asarray(array)
            want = _dt.to_numpy_dtype(graph.param_values[name].type.dtype)
            graph.params[name] = array if array.dtype == want else array.astype(want)
    for value in graph.all_values():
        if value.kind in ("node", "arg") and value.name is not None and value.name.isdigit():
            value.name = None
    if verify:
        graph.verify()
    return graph


MAX_REGION_DEPTH = 64
"""Deepest nesting of regions in IR text (untrusted input: a ParseError, not a RecursionError)."""


def _parse_regions(lines: list, i: int, node: Node, env: dict[str, Value], depth: int = 0) -> int:
    """The regions printed after ``node``'s line (``name(%a: type, ...):`` then its nodes, ending in
    ``yield``); returns the index of the first line after them."""
    regions = []
    while i < len(lines):
        lineno, raw = lines[i]
        m = _REGION.match(raw.strip())
        if not m:
            break
        if depth >= MAX_REGION_DEPTH:
            raise ParseError(f"line {lineno}: regions nested deeper than {MAX_REGION_DEPTH}")
        i += 1
        # A region's names stay inside it; outer names stay readable so that an implicit capture
        # parses and verify() reports it with the node and the value.
        inner = dict(env)
        block = Block()
        cur = _Cursor(m.group(2), lineno)
        if not cur.at_end():
            while True:
                cur.expect("%")
                name = cur.match(_NAME)
                cur.expect(":")
                ttype = _read_type(cur)
                if name in inner and any(a.name == name for a in block.arguments):
                    raise cur.error(f"region argument %{name} defined twice")
                inner[name] = block.add_argument(ttype, name=name)
                if cur.at_end():
                    break
                cur.expect(",")
        while True:
            if i >= len(lines):
                raise ParseError(f"line {lineno}: region {m.group(1)!r} of {node.op} does not end with 'yield(...)'")
            inner_lineno, inner_raw = lines[i]
            line = inner_raw.strip()
            i += 1
            if line == "}" or line.startswith("return") or _REGION.match(line):
                raise ParseError(f"line {inner_lineno}: region {m.group(1)!r} of {node.op} (line {lineno}) ends "
                                 "without 'yield(...)'")
            inner_node = _parse_node(_Cursor(line, inner_lineno), inner)
            block.append(inner_node)
            if inner_node.op == YIELD:
                break
            i = _parse_regions(lines, i, inner_node, inner, depth + 1)
        regions.append(block)
    if regions:
        node.set_regions(regions)
    return i


def _parse_node(cur: _Cursor, env: dict[str, Value]) -> Node:
    results: list[tuple[str, TensorType]] = []
    while cur.peek() == "%":  # a terminator (yield) has no results
        cur.expect("%")
        name = cur.match(_NAME)
        cur.expect(":")
        results.append((name, _read_type(cur)))
        if cur.accept("="):
            break
        cur.expect(",")
        if cur.peek() != "%":
            raise cur.error("expected '%' (another result) or '='")
    op = cur.match(r"[A-Za-z_][A-Za-z0-9_.]*")
    cur.expect("(")
    inputs: list[Value] = []
    if not cur.accept(")"):
        while True:
            inputs.append(_read_value_ref(cur, env))
            if cur.accept(")"):
                break
            cur.expect(",")
    attrs: dict[str, Any] = {}
    if cur.accept("{"):
        if not cur.accept("}"):
            while True:
                key = cur.match(r"[A-Za-z_][A-Za-z0-9_]*")
                if key in attrs:
                    raise cur.error(f"attribute {key!r} given twice")
                cur.expect("=")
                attrs[key] = _read_value(cur)
                if cur.accept("}"):
                    break
                cur.expect(",")
    scope = cur.match(r"[\w.\-/]*") if cur.accept("@") else ""
    loc = ""
    if cur.accept("("):
        end = cur.text.rfind(")")
        if end < cur.pos:
            raise cur.error("unterminated source location")
        loc, cur.pos = cur.text[cur.pos:end], end + 1
    if not cur.at_end():
        raise cur.error("unexpected text after the node")
    node = Node(op, inputs, attrs, [t for _, t in results], scope=scope, loc=loc)
    for (name, _), out in zip(results, node.outputs):
        if name in env:
            raise cur.error(f"%{name} defined twice (SSA)")
        out.name = name
        env[name] = out
    return node
