"""Dimensions: static ints and symbolic names.

A dim is an ``int`` or a string. A string is a symbol (``"batch"``) or a product of symbols and an
integer factor (``"4*batch"``), which is what reshape and flatten produce when they merge a symbolic
dim with static ones. Products are kept in a canonical spelling so that equal dims compare equal.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Mapping, Union

from ..errors import ShapeError

__all__ = ["Dim", "is_static", "dim_product", "dim_divide", "resolve_dim", "resolve_shape",
           "format_dim", "parse_dim", "is_symbolic", "check_dim", "dim_symbols", "unify_dims"]

Dim = Union[int, str]
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_static(dim: Dim) -> bool:
    return isinstance(dim, int)


def is_symbolic(dim: Dim) -> bool:
    return isinstance(dim, str)


def _factors(dim: Dim) -> tuple[int, Counter]:
    if isinstance(dim, int):
        return dim, Counter()
    coef, syms = 1, Counter()
    for part in dim.split("*"):
        part = part.strip()
        if part.isdigit():
            coef *= int(part)
        elif _SYMBOL.fullmatch(part):
            syms[part] += 1
        else:
            raise ShapeError(f"malformed symbolic dim {dim!r}")
    return coef, syms


def _build(coef: int, syms: Counter) -> Dim:
    if not syms or coef == 0:
        return coef
    parts = [] if coef == 1 else [str(coef)]
    for name in sorted(syms):
        parts.extend([name] * syms[name])
    return "*".join(parts)


def check_dim(dim) -> Dim:
    """Validate and canonicalise one dim as given by a user or parser."""
    if isinstance(dim, bool):
        raise ShapeError(f"a dim must be an int or a symbol name, got {dim!r}")
    if isinstance(dim, (int,)) or hasattr(dim, "__index__") and not isinstance(dim, str):
        value = int(dim)
        if value < 0:
            raise ShapeError(f"dims must be non-negative, got {value}", hint=_DYNAMIC_HINT)
        if value >= 2**63:  # no back end (NumPy, XLA, ONNX: int64 dims) can hold it
            raise ShapeError(f"dim {value} does not fit in int64")
        return value
    if isinstance(dim, str):
        return _build(*_factors(str(dim)))
    raise ShapeError(f"a dim must be an int or a symbol name, got {dim!r}",
                     hint=_DYNAMIC_HINT if dim is None else None)


# Keras spells a dynamic dim None and ONNX -1; graphforge names it, so equal names bind equal sizes
_DYNAMIC_HINT = "for a dim known only at run time use a symbol name, e.g. 'batch' in ('batch', 784)"


def dim_product(dims) -> Dim:
    coef, syms = 1, Counter()
    for dim in dims:
        c, s = _factors(dim)
        coef *= c
        syms.update(s)
    return _build(coef, syms)


def dim_divide(total: Dim, divisor: Dim) -> Dim | None:
    """``total / divisor`` when it divides exactly, else None."""
    c1, s1 = _factors(total)
    c2, s2 = _factors(divisor)
    if c2 == 0 or c1 % c2 or any(s1[k] < v for k, v in s2.items()):
        return None
    return _build(c1 // c2, s1 - s2)


def dim_symbols(dim: Dim) -> set[str]:
    return set(_factors(dim)[1])


def resolve_dim(dim: Dim, env: Mapping[str, int]) -> int:
    if isinstance(dim, int):
        return dim
    coef, syms = _factors(dim)
    for name, power in syms.items():
        if name not in env:
            raise ShapeError(f"symbolic dim {name!r} has no value here")
        coef *= env[name] ** power
    return coef


def resolve_shape(shape, env: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(resolve_dim(d, env) for d in shape)


def unify_dims(dim: Dim, actual: int, env: dict[str, int]) -> bool:
    """Bind the symbols of ``dim`` so it equals ``actual``; False when it cannot."""
    if isinstance(dim, int):
        return dim == actual
    coef, syms = _factors(dim)
    unknown = [s for s in syms if s not in env]
    known = coef
    for name in syms:
        if name in env:
            known *= env[name] ** syms[name]
    if not unknown:
        return known == actual
    if len(unknown) == 1 and syms[unknown[0]] == 1 and known and actual % known == 0:
        env[unknown[0]] = actual // known
        return True
    return False


def format_dim(dim: Dim) -> str:
    return str(dim)


def parse_dim(text: str) -> Dim:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return check_dim(text)
