"""Dimensions: static ints, symbols and expressions over symbols.

A dim is an ``int`` or a string. A string is a symbol (``"batch"``) or an expression over symbols
in a canonical spelling: a sum of monomials with int coefficients, where a monomial is a product of
atoms (symbols and the opaque atoms ``floor(E/k)``, ``max(A,B,…)``, ``min(A,B,…)``). Because the
spelling is canonical, equal expressions compare equal, hash equal and print the same, and the rest
of the code base can keep treating a dim as ``int | str``::

    seq - 1         -> "seq-1"          2*seq            -> "2*seq"
    heads*batch     -> "batch*heads"    ceil(seq / 2)    -> "floor((seq+1)/2)"
    (seq - 1)//2    -> "floor((seq+1)/2)-1"

Canonical form: terms are sorted by their monomial (constant last); in ``floor(E/k)`` every
coefficient of ``E`` is reduced into ``[0, k)`` with the quotient moved outside, so
``ceil(E/k) == floor((E+k-1)/k)`` has one spelling. The form is closed, not complete: two spellings
of one function may still differ (``seq - floor(seq/2)`` vs ``floor((seq+1)/2)``); then a check that
needs equality fails loudly instead of assuming it.

Plain ints and plain symbols never reach the expression machinery (the hot path of type rules):
expressions are parsed once per distinct text and cached.

Type rules can *require* facts about symbols they cannot prove (``seq <= 64`` when a 64-row table
is sliced by ``seq``; ``seq % 4 == 0`` when a reshape splits it by 4) with :func:`require_le` /
:func:`require_divisible`: inside :func:`collect_requirements` they are recorded (the graph's
guards, checked when inputs are bound), elsewhere they are dropped; a requirement that is false
for every binding is a ShapeError at once.
"""
from __future__ import annotations

import contextlib
import math
import re
import threading
from dataclasses import dataclass
from typing import Iterator, Mapping, Union

from ..errors import ShapeError

__all__ = ["Dim", "is_static", "is_symbolic", "check_dim", "parse_dim", "format_dim", "dim_product",
           "dim_divide", "dim_symbols", "resolve_dim", "resolve_shape", "unify_dims", "dim_add", "dim_sub",
           "dim_mul", "dim_neg", "dim_floordiv", "dim_ceildiv", "dim_mod", "dim_max", "dim_min", "dim_le",
           "dim_tree", "dim_monomial", "dim_expr", "is_polynomial", "require_equal", "is_dim_text", "Requirement", "require_le", "require_divisible",
           "collect_requirements", "requirements_collected", "resolve_attr_dims", "has_symbolic_attr", "require_broadcast"]

Dim = Union[int, str]
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT64_END = 2 ** 63
_FUNCS = ("floor", "ceil", "max", "min")

# A polynomial: {monomial: coefficient}; a monomial is a sorted tuple of atom texts (repeated for
# powers), () for the constant term. An atom is a symbol or a canonical floor/max/min text.
Poly = dict


def is_static(dim: Dim) -> bool:
    return isinstance(dim, int)


def is_symbolic(dim: Dim) -> bool:
    return isinstance(dim, str)


# ---- polynomials ------------------------------------------------------------------------------

def _p_const(c: int) -> Poly:
    return {(): c} if c else {}


def _p_add(a: Poly, b: Poly, sign: int = 1) -> Poly:
    out = dict(a)
    for m, c in b.items():
        v = out.get(m, 0) + sign * c
        if v:
            out[m] = v
        else:
            out.pop(m, None)
    return out


def _p_scale(a: Poly, k: int) -> Poly:
    return {m: c * k for m, c in a.items()} if k else {}


def _p_mul(a: Poly, b: Poly) -> Poly:
    out: Poly = {}
    for m1, c1 in a.items():
        for m2, c2 in b.items():
            m = tuple(sorted(m1 + m2)) if m1 and m2 else (m1 or m2)
            v = out.get(m, 0) + c1 * c2
            if v:
                out[m] = v
            else:
                out.pop(m, None)
    return out


def _p_int(a: Poly) -> int | None:
    if not a:
        return 0
    if len(a) == 1 and () in a:
        return a[()]
    return None


def _mono_text(m: tuple) -> str:
    return "*".join(m)


def _p_text(a: Poly) -> str:
    if not a:
        return "0"
    order = sorted(a, key=lambda m: (not m, m))
    first = next((i for i, m in enumerate(order) if a[m] > 0), 0)
    order.insert(0, order.pop(first))  # "64-seq", not "-seq+64"
    parts = []
    for m in order:
        c = a[m]
        if not m:
            body, mag = str(abs(c)), abs(c)
        else:
            mag = abs(c)
            body = _mono_text(m) if mag == 1 else f"{mag}*{_mono_text(m)}"
        if c < 0:
            parts.append("-" + body)
        else:
            parts.append(("+" if parts else "") + body)
    return "".join(parts)


def _p_dim(a: Poly) -> Dim:
    """The canonical dim (an int when constant) of a polynomial."""
    c = _p_int(a)
    if c is not None:
        return c
    text = _p_text(a)
    _PARSED.setdefault(text, a)
    return text


# ---- atoms ------------------------------------------------------------------------------------

def _atom_poly(text: str) -> Poly:
    return {(text,): 1}


def _floor(num: Poly, k: int) -> Poly:
    """floor(num / k) in canonical form (k >= 1)."""
    if k == 1:
        return num
    g = math.gcd(k, *num.values())
    if g > 1:  # floor((8*seq)/16) is floor(seq/2)
        num, k = {m: c // g for m, c in num.items()}, k // g
        if k == 1:
            return num
    outside: Poly = {}
    inside: Poly = {}
    for m, c in num.items():
        q, r = divmod(c, k)
        if q:
            outside[m] = q
        if r:
            inside[m] = r
    if not inside:
        return outside
    ci = _p_int(inside)
    if ci is not None:  # 0 <= ci < k
        return outside
    body = _p_text(inside)
    if len(inside) > 1 or next(iter(inside.values())) != 1 or len(next(iter(inside))) > 1:
        body = f"({body})"
    atom = f"floor({body}/{k})"
    _ATOMS.setdefault(atom, ("floor", inside, k))
    return _p_add(outside, _atom_poly(atom))


def _nonneg_atom(atom: str) -> bool:
    info = _ATOMS.get(atom)
    if info is None:
        return True  # a symbol: a dim size
    kind = info[0]
    if kind == "floor":
        return _nonneg(info[1])
    if kind == "max":
        return any(_nonneg(a) for a in info[1])
    return all(_nonneg(a) for a in info[1])


def _nonneg(a: Poly) -> bool:
    """True when ``a >= 0`` for every binding of its symbols to sizes (>= 0)."""
    return all(c > 0 or (not m and c >= 0) for m, c in a.items()) and all(
        _nonneg_atom(x) for m in a for x in m)


def _extreme(kind: str, args: list[Poly]) -> Poly:
    flat: list[Poly] = []
    for a in args:
        if len(a) == 1 and next(iter(a.values())) == 1:
            (m,) = a
            info = _ATOMS.get(m[0]) if len(m) == 1 else None
            if info is not None and info[0] == kind:
                flat.extend(info[1])
                continue
        flat.append(a)
    uniq: dict[str, Poly] = {}
    for a in flat:
        uniq.setdefault(_p_text(a), a)
    # drop every argument another one provably dominates (max: b - a >= 0; min: a - b >= 0)
    sign = 1 if kind == "max" else -1
    keep = [a for t, a in uniq.items()
            if not any(t2 != t and _nonneg(_p_scale(_p_add(b, a, -1), sign)) for t2, b in uniq.items())]
    texts = sorted({_p_text(a): a for a in keep}.items())
    if len(texts) == 1:
        return texts[0][1]
    atom = f"{kind}({','.join(t for t, _ in texts)})"
    _ATOMS.setdefault(atom, (kind, [a for _, a in texts]))
    return _atom_poly(atom)


# ---- parsing ----------------------------------------------------------------------------------

_PARSED: dict[str, Poly] = {}  # dim text -> polynomial (any spelling, canonical or not)
_ATOMS: dict[str, tuple] = {}  # canonical atom text -> ("floor", num, k) | ("max"|"min", [args])
_MAX_CACHED = 1 << 16  # ever new expressions (a long-running server) only stop being cached
_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(//|[-+*/(),]))")
MAX_DIM_DEPTH = 100
"""Deepest nesting (parentheses, ``floor``/``max``/``min`` calls, unary minus) of a dim expression
read from text. IR text and ONNX dim params are untrusted input: the recursive-descent parser must
end in a ShapeError, not a RecursionError (each level costs four Python frames)."""


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise ShapeError(f"malformed symbolic dim {text!r} at {text[pos:]!r}")
            self.tokens.append(m.group(m.lastindex))
            pos = m.end()
        self.i = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise ShapeError(f"malformed symbolic dim {self.text!r}: expected {want or 'more'}")
        self.i += 1
        return tok

    def expr(self) -> Poly:
        out = self.term()
        while self.peek() in ("+", "-"):
            sign = 1 if self.take() == "+" else -1
            out = _p_add(out, self.term(), sign)
        return out

    def term(self) -> Poly:
        out = self.unary()
        while self.peek() in ("*", "//"):
            if self.take() == "*":
                out = _p_mul(out, self.unary())
            else:
                k = _p_int(self.unary())
                if k is None or k <= 0:
                    raise ShapeError(f"malformed symbolic dim {self.text!r}: '//' needs a positive int")
                out = _floor(out, k)
        return out

    def unary(self) -> Poly:
        # every nesting level (a parenthesis, a function call, a unary minus) passes through here
        self.depth += 1
        if self.depth > MAX_DIM_DEPTH:
            raise ShapeError(f"malformed symbolic dim {self.text[:80]!r}{'...' if len(self.text) > 80 else ''}: "
                             f"nested deeper than {MAX_DIM_DEPTH} levels")
        try:
            if self.peek() == "-":
                self.take()
                return _p_scale(self.unary(), -1)
            return self.atom()
        finally:
            self.depth -= 1

    def atom(self) -> Poly:
        tok = self.take()
        if tok.isdigit():
            return _p_const(int(tok))
        if tok == "(":
            out = self.expr()
            self.take(")")
            return out
        if _SYMBOL.fullmatch(tok):
            if tok in _FUNCS and self.peek() == "(":
                self.take("(")
                if tok in ("floor", "ceil"):
                    num = self.expr()
                    self.take("/")
                    k = _p_int(self.unary())
                    self.take(")")
                    if k is None or k <= 0:
                        raise ShapeError(f"malformed symbolic dim {self.text!r}: {tok} divides by a positive int")
                    return _floor(num if tok == "floor" else _p_add(num, _p_const(k - 1)), k)
                args = [self.expr()]
                while self.peek() == ",":
                    self.take(",")
                    args.append(self.expr())
                self.take(")")
                return _extreme(tok, args)
            return _atom_poly(tok)
        raise ShapeError(f"malformed symbolic dim {self.text!r}: unexpected {tok!r}")


def _poly(dim: Dim) -> Poly:
    if type(dim) is int:
        return _p_const(dim)
    got = _PARSED.get(dim)
    if got is not None:
        return got
    if _SYMBOL.fullmatch(dim) and dim not in _FUNCS:
        out = _atom_poly(dim)
    else:
        p = _Parser(dim)
        out = p.expr()
        if p.peek() is not None:
            raise ShapeError(f"malformed symbolic dim {dim!r}: unexpected {p.peek()!r}")
    if len(_PARSED) < _MAX_CACHED:
        _PARSED[dim] = out
    return out


# ---- the public dim algebra --------------------------------------------------------------------

def _as_dim(x) -> Dim:
    if isinstance(x, bool):
        raise ShapeError(f"a dim must be an int or a symbolic dim, got {x!r}")
    if isinstance(x, str):
        return str(x)
    if isinstance(x, int) or hasattr(x, "__index__"):
        return int(x)
    raise ShapeError(f"a dim must be an int or a symbolic dim, got {x!r}")


def _P(x) -> Poly:
    return _poly(_as_dim(x))


def dim_add(*dims) -> Dim:
    out: Poly = {}
    for d in dims:
        out = _p_add(out, _P(d))
    return _p_dim(out)


def dim_sub(a, b) -> Dim:
    return _p_dim(_p_add(_P(a), _P(b), -1))


def dim_neg(a) -> Dim:
    return _p_dim(_p_scale(_P(a), -1))


def dim_mul(a, b) -> Dim:
    return _p_dim(_p_mul(_P(a), _P(b)))


def dim_floordiv(a, k) -> Dim:
    """``a // k`` for a positive int ``k`` (or an expression that divides ``a`` exactly)."""
    if not isinstance(k, int):
        exact = dim_divide(a, k)
        if exact is None:
            raise ShapeError(f"cannot divide the dim {a} by {k}: only division by an int, or by an expression "
                             "that divides it exactly, is a dim expression")
        return exact
    if k <= 0:
        raise ShapeError(f"cannot floor-divide the dim {a} by {k}: the divisor must be positive")
    return _p_dim(_floor(_P(a), k))


def dim_ceildiv(a, k: int) -> Dim:
    if not isinstance(k, int) or k <= 0:
        raise ShapeError(f"cannot ceil-divide the dim {a} by {k}: the divisor must be a positive int")
    return _p_dim(_floor(_p_add(_P(a), _p_const(k - 1)), k))


def dim_mod(a, k: int) -> Dim:
    return dim_sub(a, dim_mul(k, dim_floordiv(a, k)))


def dim_max(*dims) -> Dim:
    return _p_dim(_extreme("max", [_P(d) for d in dims]))


def dim_min(*dims) -> Dim:
    return _p_dim(_extreme("min", [_P(d) for d in dims]))


def _nonneg_floors(a: Poly, depth: int = 4) -> bool:
    """``_nonneg``, and where it fails, again with a ``floor(N/k)`` that ``a`` holds linearly replaced
    by the bound that matters — ``k*floor(N/k) >= N-k+1`` for a positive coefficient, ``<= N`` for a
    negative one — so ``h <= 2*floor((h+1)/2)+1`` (a strided conv's rows) is proved, not a guard."""
    if _nonneg(a):
        return True
    if depth == 0:
        return False
    for m, c in a.items():
        info = _ATOMS.get(m[0]) if len(m) == 1 else None
        if info is None or info[0] != "floor" or any(m[0] in m2 for m2 in a if m2 != m):
            continue
        num, k = info[1], info[2]
        rest = _p_scale({m2: c2 for m2, c2 in a.items() if m2 != m}, k)
        bound = _p_add(rest, _p_scale(num if c < 0 else _p_add(num, _p_const(1 - k)), c))
        if _nonneg_floors(bound, depth - 1):
            return True
    return False


def dim_le(a, b) -> bool | None:
    """``a <= b``: True or False when it holds or fails for every binding, None when it depends."""
    if type(a) is int and type(b) is int:
        return a <= b
    diff = _p_add(_P(b), _P(a), -1)
    if _nonneg_floors(diff):
        return True
    if _nonneg_floors(_p_add(_p_scale(diff, -1), _p_const(-1))):
        return False
    return None


def dim_product(dims) -> Dim:
    out: Dim = 1
    for d in dims:
        out = out * d if type(out) is int and type(d) is int else dim_mul(out, d)
    return out


def _p_div_mono(a: Poly, coef: int, mono: tuple) -> Poly | None:
    """``a / (coef * mono)`` when every term divides exactly, else None."""
    out: Poly = {}
    for m, c in a.items():
        if c % coef:
            return None
        rest = list(m)
        for x in mono:
            if x not in rest:
                return None
            rest.remove(x)
        out[tuple(rest)] = c // coef
    return out


def dim_divide(total: Dim, divisor: Dim) -> Dim | None:
    """``total / divisor`` when it divides exactly as polynomials, else None."""
    if type(total) is int and type(divisor) is int:
        return total // divisor if divisor and total % divisor == 0 else None
    d, t = _P(divisor), _P(total)
    if len(d) != 1:  # only a polynomial divides itself among the non-monomials we meet
        return 1 if d and t == d else None
    (mono, coef), = d.items()
    if coef <= 0:  # dims are non-negative; a negative divisor is not a dim
        return None
    out = _p_div_mono(t, coef, mono)
    return None if out is None else _p_dim(out)


def dim_monomial(dim: Dim) -> tuple[int, list[str]] | None:
    """``"4*batch*seq"`` -> ``(4, ["batch", "seq"])``; None unless ``dim`` is a single monomial of symbols."""
    if type(dim) is int:
        return dim, []
    a = _P(dim)
    if len(a) != 1:
        return None
    (mono, coef), = a.items()
    if any(x in _ATOMS for x in mono):
        return None
    return coef, list(mono)


def is_polynomial(dim: Dim) -> bool:
    """True when ``dim`` has no floor/max/min atom: then two different spellings are different
    functions of the symbols, and a size check between them can be decided at trace time."""
    return type(dim) is int or not any(x in _ATOMS for m in _P(dim) for x in m)


def require_equal(lhs, rhs, reason: str) -> None:
    """Require ``lhs == rhs`` where equality hangs on floor/max/min atoms (``2*floor(seq/2)`` vs
    ``seq``): two guards; between plain polynomials a difference is a ShapeError at once."""
    if lhs == rhs:
        return
    if is_polynomial(lhs) and is_polynomial(rhs):
        raise ShapeError(f"{reason}: {lhs} != {rhs}")
    diff = _p_add(_P(lhs), _P(rhs), -1)
    for m, c in diff.items():  # P - k*floor(P/k) == 0 is P % k == 0 (chunks, reshapes by k)
        info = _ATOMS.get(m[0]) if len(m) == 1 else None
        if info is not None and info[0] == "floor" and abs(c) == info[2]:
            num, k = info[1], info[2]
            if _p_add(_p_scale(diff, -1 if c > 0 else 1), _p_add(num, _p_scale(_atom_poly(m[0]), k), -1), -1) == {}:
                require_divisible(_p_dim(num), k, reason)
                return
    require_le(lhs, rhs, reason)
    require_le(rhs, lhs, reason)


def dim_symbols(dim: Dim) -> set[str]:
    if type(dim) is int:
        return set()
    out: set[str] = set()
    for m in _P(dim):
        for x in m:
            info = _ATOMS.get(x)
            if info is None:
                out.add(x)
            elif info[0] == "floor":
                out |= dim_symbols(_p_dim(info[1]))
            else:
                for arg in info[1]:
                    out |= dim_symbols(_p_dim(arg))
    return out


def _eval_atom(atom: str, env: Mapping[str, int]) -> int:
    info = _ATOMS.get(atom)
    if info is None:
        if atom not in env:
            raise ShapeError(f"symbolic dim {atom!r} has no value here")
        return int(env[atom])
    if info[0] == "floor":
        return _eval(info[1], env) // info[2]
    values = [_eval(a, env) for a in info[1]]
    return max(values) if info[0] == "max" else min(values)


def _eval(a: Poly, env: Mapping[str, int]) -> int:
    total = 0
    for m, c in a.items():
        for x in m:
            c *= _eval_atom(x, env)
        total += c
    return total


def resolve_dim(dim: Dim, env: Mapping[str, int]) -> int:
    if type(dim) is int:
        return dim
    if dim in env:
        return int(env[dim])
    return _eval(_P(dim), env)


def resolve_shape(shape, env: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(d if type(d) is int else resolve_dim(d, env) for d in shape)


def unify_dims(dim: Dim, actual: int, env: dict[str, int]) -> bool:
    """Bind the symbols of ``dim`` so it equals ``actual``; False when it cannot.

    A dim with one unbound symbol that appears linearly (``batch``, ``4*batch``, ``seq+1``) binds
    it; a dim whose symbols are all bound is compared."""
    if type(dim) is int:
        return dim == actual
    if dim in env:
        return env[dim] == actual
    a = _P(dim)
    unknown = dim_symbols(dim) - set(env)
    if not unknown:
        return _eval(a, env) == actual
    if len(unknown) != 1:
        return False
    (sym,) = unknown
    known, slope = 0, 0
    for m, c in a.items():
        if m.count(sym) > 1 or any(x in _ATOMS and sym in dim_symbols(x) for x in m):
            return False
        rest = [x for x in m if x != sym]
        value = c
        for x in rest:
            value *= _eval_atom(x, env)
        if sym in m:
            slope += value
        else:
            known += value
    if slope == 0 or (actual - known) % slope or (actual - known) // slope < 0:
        return False
    env[sym] = (actual - known) // slope
    return True


def dim_tree(dim: Dim):
    """The structure of ``dim`` for back ends that compute it at run time: ``("int", n)``,
    ``("sym", name)``, ``("add", [trees])``, ``("mul", [trees])``, ``("floordiv", tree, k)``,
    ``("max"|"min", [trees])``. Coefficients appear as ``("int", c)`` factors."""
    if type(dim) is int:
        return ("int", dim)
    return _tree(_P(dim))


def _tree(a: Poly):
    terms = []
    for m in sorted(a, key=lambda m: (not m, m)):
        c = a[m]
        factors = [_atom_tree(x) for x in m]
        if c != 1 or not factors:
            factors.append(("int", c))
        terms.append(factors[0] if len(factors) == 1 else ("mul", factors))
    if not terms:
        return ("int", 0)
    return terms[0] if len(terms) == 1 else ("add", terms)


def _atom_tree(atom: str):
    info = _ATOMS.get(atom)
    if info is None:
        return ("sym", atom)
    if info[0] == "floor":
        return ("floordiv", _tree(info[1]), info[2])
    return (info[0], [_tree(x) for x in info[1]])


# ---- validation, text --------------------------------------------------------------------------

def check_dim(dim) -> Dim:
    """Validate and canonicalise one dim as given by a user or parser."""
    if isinstance(dim, bool):
        raise ShapeError(f"a dim must be an int or a symbol name, got {dim!r}")
    if isinstance(dim, (int,)) or hasattr(dim, "__index__") and not isinstance(dim, str):
        value = int(dim)
        if value < 0:
            raise ShapeError(f"dims must be non-negative, got {value}", hint=_DYNAMIC_HINT)
        if value >= _INT64_END:  # no back end (NumPy, XLA, ONNX: int64 dims) can hold it
            raise ShapeError(f"dim {value} does not fit in int64")
        return value
    if isinstance(dim, str):
        dim = str(dim)  # a SymDim from tracing is stored as its plain text
        if _SYMBOL.fullmatch(dim) and dim not in _FUNCS:
            return dim
        out = _p_dim(_poly(dim))
        if type(out) is int and out < 0:
            raise ShapeError(f"dims must be non-negative, got {dim!r} = {out}")
        return out
    raise ShapeError(f"a dim must be an int or a symbol name, got {dim!r}",
                     hint=_DYNAMIC_HINT if dim is None else None)


# Keras spells a dynamic dim None and ONNX -1; graphforge names it, so equal names bind equal sizes
_DYNAMIC_HINT = "for a dim known only at run time use a symbol name, e.g. 'batch' in ('batch', 784)"


def dim_expr(value) -> Dim:
    """The canonical form of an int or a dim expression that need not be a size (``-1``, ``1-seq``):
    what attributes such as slice bounds and reshape targets hold."""
    if isinstance(value, str):
        value = str(value)
        if _SYMBOL.fullmatch(value) and value not in _FUNCS:
            return value
        return _p_dim(_poly(value))
    return _as_dim(value)


def format_dim(dim: Dim) -> str:
    return str(dim)


def parse_dim(text: str) -> Dim:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return check_dim(text)


def is_dim_text(text: str) -> bool:
    """True when ``text`` reads as a symbolic dim expression (it names at least one symbol)."""
    if not text or not any(c.isalpha() or c == "_" for c in text):
        return False
    try:
        return bool(dim_symbols(_p_dim(_poly(text))))
    except ShapeError:
        return False


# ---- requirements (guards) ---------------------------------------------------------------------

@dataclass(frozen=True)
class Requirement:
    """A fact the types of a graph rely on: ``lhs <= rhs`` (``kind="le"``), ``lhs % rhs == 0``
    (``kind="divisible"``) or ``lhs`` and ``rhs`` broadcast together, i.e. they are equal or one is 1
    (``kind="broadcast"``); ``reason`` says which op needs it and why."""
    kind: str
    lhs: Dim
    rhs: Dim
    reason: str

    def holds(self, env: Mapping[str, int]) -> bool:
        a, b = resolve_dim(self.lhs, env), resolve_dim(self.rhs, env)
        if self.kind == "broadcast":
            return a == b or a == 1 or b == 1
        return a <= b if self.kind == "le" else (b != 0 and a % b == 0)

    def __str__(self) -> str:
        if self.kind == "broadcast":
            return f"{self.lhs} and {self.rhs} broadcast ({self.lhs} == {self.rhs}, or one is 1)"
        return f"{self.lhs} <= {self.rhs}" if self.kind == "le" else f"{self.lhs} % {self.rhs} == 0"


_local = threading.local()


@contextlib.contextmanager
def collect_requirements() -> Iterator[list[Requirement]]:
    """Record the requirements type rules make inside the block into the yielded list."""
    stack = _local.__dict__.setdefault("stack", [])
    sink: list[Requirement] = []
    stack.append(sink)
    try:
        yield sink
    finally:
        stack.pop()


def requirements_collected() -> bool:
    """Whether a :func:`collect_requirements` block is recording on this thread."""
    return bool(_local.__dict__.get("stack"))


def _record(req: Requirement) -> None:
    stack = _local.__dict__.get("stack")
    if stack:
        stack[-1].append(req)


def require_le(lhs, rhs, reason: str) -> None:
    """Require ``lhs <= rhs``: nothing when provable, a ShapeError when impossible, else a guard."""
    known = dim_le(lhs, rhs)
    if known is True:
        return
    if known is False:
        raise ShapeError(f"{reason}: needs {lhs} <= {rhs}, which never holds")
    # one spelling per fact: constants on one side ("seq <= 64", "1 <= seq", not "0 <= seq-1")
    diff = _p_add(_P(rhs), _P(lhs), -1)
    k = diff.get((), 0)
    rest = {m: c for m, c in diff.items() if m}
    if all(c < 0 for c in rest.values()):
        lhs, rhs = _p_dim(_p_scale(rest, -1)), k
    elif all(c > 0 for c in rest.values()):
        lhs, rhs = -k, _p_dim(rest)
    _record(Requirement("le", dim_expr(lhs), dim_expr(rhs), reason))


def require_broadcast(a, b, reason: str) -> Dim:
    """Broadcast two different symbolic dims: ``max(a, b)`` (the size when they are equal or one is 1),
    with the requirement that they are, checked when the graph's inputs are bound."""
    a, b = dim_expr(a), dim_expr(b)
    lo, hi = (a, b) if str(a) <= str(b) else (b, a)   # one spelling per fact
    _record(Requirement("broadcast", lo, hi, reason))
    return dim_max(a, b)


def require_divisible(lhs, k: int, reason: str) -> None:
    """Require ``lhs % k == 0`` (``k`` a positive int)."""
    a = _P(lhs)
    if all(c % k == 0 for c in a.values()):
        return
    if _p_int(a) is not None:
        raise ShapeError(f"{reason}: needs {lhs} to be a multiple of {k}")
    g = math.gcd(k, *a.values())  # "8*seq % 16 == 0" is "seq % 2 == 0"
    a, k = {m: c // g for m, c in a.items()}, k // g
    _record(Requirement("divisible", _p_dim(a), int(k), reason))


# ---- symbolic dims inside attributes -----------------------------------------------------------

def has_symbolic_attr(attrs: Mapping) -> bool:
    """True when an attribute (or an item of a list attribute) is a symbolic dim."""
    for v in attrs.values():
        if type(v) is list or type(v) is tuple:
            if any(type(x) is str and is_dim_text(x) for x in v):
                return True
    return False


def resolve_attr_dims(attrs: Mapping, keys, env: Mapping[str, int]) -> dict:
    """``attrs`` with the symbolic dims of ``keys`` (scalar or list attributes) resolved from ``env``."""
    out = dict(attrs)
    for key in keys:
        v = out.get(key)
        if type(v) is str:
            out[key] = resolve_dim(v, env)
        elif type(v) is list or type(v) is tuple:
            out[key] = [resolve_dim(x, env) if type(x) is str else x for x in v]
    return out

