"""The one error hierarchy of graphforge.

Everything a user can cause raises a subclass of :class:`GraphforgeError`, with a message that
names what was wrong and where (module scope, op, shapes, ``file:line``) and, when we know it,
how to fix it.
"""
from __future__ import annotations

__all__ = [
    "GraphforgeError",
    "ShapeError",
    "DTypeError",
    "TraceError",
    "UnsupportedOpError",
    "ParseError",
    "VerifyError",
    "PassError",
    "LoadError",
    "InputError",
    "BackendError",
    "ExportError",
    "ConfigError",
    "StateDictError",
]


class GraphforgeError(Exception):
    """Base class of every error graphforge raises on purpose.

    Args:
        message: what went wrong (kept as ``.detail``).
        scope: the module path it happened in (``encoder.layers.0.ffn.fc1``).
        op: the op or function involved.
        loc: the user's ``file:line``.
        hint: how to fix it (printed on its own line).

    Example:
        ```python
        try:
            gf.trace(model, gf.TensorSpec(("batch", 64)))
        except gf.ShapeError as err:
            print(err.scope, err.loc, err.hint)
        ```
    """

    def __init__(self, message: str, *, scope: str | None = None, op: str | None = None,
                 loc: str | None = None, hint: str | None = None):
        self.scope = scope or None
        self.op = op
        self.loc = loc or None
        self.hint = hint
        self.detail = message
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = []
        if self.scope:
            where.append(self.scope)
        if self.op:
            where.append(self.op)
        text = (": ".join(where) + ": " if where else "") + self.detail
        if self.loc:
            text += f"\n  at {self.loc}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ShapeError(GraphforgeError, ValueError):
    """Shapes that do not fit together (raised when a node is built)."""


class DTypeError(GraphforgeError, TypeError):
    """Dtypes that an op does not accept or cannot be combined."""


class TraceError(GraphforgeError):
    """A model did something that cannot be traced (e.g. branching on a symbolic value)."""


class UnsupportedOpError(GraphforgeError):
    """An op that a back end, opset or importer cannot express. ``ops`` lists every offender.

    Args:
        message: what cannot be expressed.
        ops: see above.
    """

    def __init__(self, message: str, *, ops: list | None = None, **kw):
        self.ops = list(ops or [])
        super().__init__(message, **kw)


class ParseError(GraphforgeError):
    """Malformed graphforge IR text; the message names the line and column."""


class VerifyError(GraphforgeError):
    """A graph that breaks an IR invariant (SSA, types, order, dangling uses)."""


class PassError(GraphforgeError):
    """A pass failed or left a broken graph; the message names the pass and those before it."""


class LoadError(GraphforgeError):
    """A file (weights, checkpoint, model, ONNX) that cannot be read safely."""


class InputError(GraphforgeError, ValueError):
    """Runtime inputs that do not match the graph's input specs."""


class BackendError(GraphforgeError):
    """A back end failed to compile or run a graph."""


class ExportError(GraphforgeError):
    """A graph that cannot be written in the requested format."""


class ConfigError(GraphforgeError, ValueError):
    """A layer, initialiser, optimizer or Trainer set up with an invalid argument (e.g.
    ``nn.Dropout(1.5)``, ``optimizer="adamm"``); the message names the argument and its valid range."""


class StateDictError(LoadError):
    """A state dict that does not fit a model: ``missing``, ``unexpected`` and ``mismatched``
    (name -> (got, expected) shape/dtype text) list every offender, not only the first.

    Args:
        message: what went wrong.
        missing: see above.
        unexpected: see above.
        mismatched: see above.
    """

    def __init__(self, message: str, *, missing=(), unexpected=(), mismatched=None, **kw):
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = dict(mismatched or {})
        super().__init__(message, **kw)
