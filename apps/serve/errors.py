"""Typed errors of the inference server, each carrying the HTTP status it is answered with.

They subclass the core hierarchy in :mod:`graphforge.errors`, so callers that catch
``GraphforgeError`` (or ``InputError`` for a bad request) keep working.
"""
from __future__ import annotations

from graphforge.errors import BackendError, GraphforgeError, InputError

__all__ = [
    "ServeError",
    "BadRequestError",
    "PayloadTooLargeError",
    "UnsupportedMediaTypeError",
    "RequestTimeoutError",
    "QueueFullError",
    "ShuttingDownError",
    "InferenceError",
    "ServeConfigError",
    "ModelNotFoundError",
    "UnauthorizedError",
]


class ServeError(GraphforgeError):
    """Base of the errors a request can end in; ``status`` is the HTTP status code to answer."""

    status: int = 500


class BadRequestError(ServeError, InputError):
    """A request whose body cannot be read as model inputs (shape, dtype, names, syntax): 400."""

    status = 400


class PayloadTooLargeError(ServeError, InputError):
    """A body (or the arrays it decodes to) larger than ``--max-body-bytes``: 413."""

    status = 413


class UnsupportedMediaTypeError(ServeError, InputError):
    """A ``Content-Type`` that is neither JSON nor ``.npy``/``.npz``: 415."""

    status = 415


class RequestTimeoutError(ServeError, InputError):
    """The client took longer than ``--body-timeout`` to send its body: 408."""

    status = 408


class ModelNotFoundError(ServeError, InputError):
    """A model (or a version of it) that the server does not serve, or no longer does: 404."""

    status = 404


class UnauthorizedError(ServeError, InputError):
    """A request without the bearer token the server was started with (``--auth-token``): 401."""

    status = 401


class QueueFullError(ServeError):
    """The bounded request queue is full; the client should retry later: 503."""

    status = 503


class ShuttingDownError(ServeError):
    """The server is draining and takes no new work: 503."""

    status = 503


class InferenceError(ServeError, BackendError):
    """onnxruntime failed on inputs that passed validation (500, or 400 for ORT InvalidArgument)."""

    def __init__(self, message: str, *, status: int = 500, **kw):
        self.status = status
        super().__init__(message, **kw)


class ServeConfigError(GraphforgeError, ValueError):
    """An invalid server option (``--max-batch 0``, a negative wait, ...)."""
