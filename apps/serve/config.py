"""Options of ``graphforge serve``: the :class:`ServeConfig` record and its command-line flags.

Kept free of Starlette/uvicorn/onnxruntime imports so the CLI can build its parser (``--help``)
without the ``serve`` extra installed.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass

from .errors import ServeConfigError

__all__ = ["ServeConfig", "add_arguments", "config_from_args", "is_loopback", "AUTH_TOKEN_ENV"]

AUTH_TOKEN_ENV = "GRAPHFORGE_SERVE_AUTH_TOKEN"
"""Environment variable read for the bearer token when ``--auth-token`` is not given."""


def is_loopback(host: str) -> bool | None:
    """True for addresses only this machine can reach (``127.0.0.0/8``, ``::1``, a name resolving only
    to those), False for any other, None for a name that does not resolve (binding it will fail)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    import socket

    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


@dataclass
class ServeConfig:
    """Server options. Batching is on when ``max_batch > 1`` and ``max_wait_ms > 0``."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 64
    max_wait_ms: float = 2.0
    workers: int = 1
    queue_size: int = 256
    max_body_bytes: int = 16 * 1024 * 1024
    body_timeout: float = 30.0
    graceful_timeout: float = 30.0
    log_level: str = "info"
    access_log: bool = False
    model_repository: str | None = None
    repository_poll: float = 0.0
    allow_remote: bool = False
    auth_token: str | None = None
    reject_nonfinite: bool = False
    header_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 1024
    max_header_bytes: int = 64 * 1024

    @property
    def batching(self) -> bool:
        return self.max_batch > 1 and self.max_wait_ms > 0

    def validate(self) -> "ServeConfig":
        """Raise :class:`ServeConfigError` naming the first bad option; return ``self``."""
        checks = [
            (0 <= self.port <= 65535, f"--port must be in 0..65535, got {self.port}"),
            (self.max_batch >= 1, f"--max-batch must be >= 1, got {self.max_batch}"),
            (self.max_wait_ms >= 0, f"--max-wait-ms must be >= 0, got {self.max_wait_ms}"),
            (self.max_wait_ms <= 60_000, f"--max-wait-ms must be <= 60000, got {self.max_wait_ms}"),
            (self.workers >= 1, f"--workers must be >= 1, got {self.workers}"),
            (self.queue_size >= 1, f"--queue-size must be >= 1, got {self.queue_size}"),
            (self.max_body_bytes >= 1, f"--max-body-bytes must be >= 1, got {self.max_body_bytes}"),
            (self.body_timeout > 0, f"--body-timeout must be > 0, got {self.body_timeout}"),
            (self.repository_poll >= 0, f"--repository-poll must be >= 0, got {self.repository_poll}"),
            (self.header_timeout > 0, f"--header-timeout must be > 0, got {self.header_timeout}"),
            (self.keep_alive_timeout > 0, f"--keep-alive-timeout must be > 0, got {self.keep_alive_timeout}"),
            (self.max_connections >= 1, f"--max-connections must be >= 1, got {self.max_connections}"),
            (self.max_header_bytes >= 1024, f"--max-header-bytes must be >= 1024, got {self.max_header_bytes}"),
            (self.auth_token is None or len(self.auth_token) >= 8,
             "--auth-token must be at least 8 characters"),
            (self.allow_remote or is_loopback(self.host) is not False,
             f"--host {self.host} accepts connections from other machines; graphforge serve has no TLS and, "
             "without --auth-token, no authentication: add --allow-remote to bind it anyway"),
            (self.graceful_timeout >= 0, f"--graceful-timeout must be >= 0, got {self.graceful_timeout}"),
            (bool(self.host), "--host must not be empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise ServeConfigError(message)
        return self


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``MODEL`` and the server flags to ``parser``."""
    d = ServeConfig()
    parser.add_argument("model", metavar="MODEL.onnx", nargs="?",
                        help="the ONNX model to serve (or give --model-repository)")
    parser.add_argument("--model-repository", metavar="DIR", default=None,
                        help="serve every model in DIR/<model>/<version>/model.onnx (optional "
                             "DIR/<model>/config.json: max_batch, max_wait_ms, inputs)")
    parser.add_argument("--repository-poll", type=float, default=d.repository_poll, metavar="SECONDS",
                        help="rescan the model files every SECONDS and reload changed models; 0: only on "
                             "POST /v2/repository/models/<m>/load (default 0)")
    parser.add_argument("--host", default=d.host,
                        help=f"address to bind, and only that one (default {d.host}, loopback); a "
                             "non-loopback address needs --allow-remote")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow --host to be an address other machines can reach (prints a warning)")
    parser.add_argument("--auth-token", default=None,
                        help=f"require 'Authorization: Bearer TOKEN' on every request but health checks "
                             f"(default: ${AUTH_TOKEN_ENV} if set, else no authentication)")
    parser.add_argument("--reject-nonfinite", action="store_true",
                        help="answer 400 to float inputs holding NaN or infinity")
    parser.add_argument("--header-timeout", type=float, default=d.header_timeout,
                        help="seconds a connection may take to send a request's headers, counted from when "
                             f"it opens or is idle after an answer (default {d.header_timeout:g})")
    parser.add_argument("--keep-alive-timeout", type=float, default=d.keep_alive_timeout,
                        help=f"seconds an idle keep-alive connection stays open (default {d.keep_alive_timeout:g})")
    parser.add_argument("--max-connections", type=int, default=d.max_connections,
                        help=f"open connections served at once; more are answered 503 (default {d.max_connections})")
    parser.add_argument("--max-header-bytes", type=int, default=d.max_header_bytes,
                        help=f"largest request line + headers (default {d.max_header_bytes})")
    parser.add_argument("--port", type=int, default=d.port, help=f"TCP port, 0 for any free one (default {d.port})")
    parser.add_argument("--max-batch", type=int, default=d.max_batch,
                        help=f"most rows merged into one inference call; 1 turns batching off (default {d.max_batch})")
    parser.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                        help="longest a request waits for others to batch with; 0 turns batching off "
                             f"(default {d.max_wait_ms:g})")
    parser.add_argument("--workers", type=int, default=d.workers,
                        help=f"inference worker threads running onnxruntime concurrently (default {d.workers})")
    parser.add_argument("--queue-size", type=int, default=d.queue_size,
                        help="requests that may be received or wait for a worker at once; more are answered 503 "
                             f"(default {d.queue_size})")
    parser.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes,
                        help=f"largest request body, and largest decoded arrays (default {d.max_body_bytes})")
    parser.add_argument("--body-timeout", type=float, default=d.body_timeout,
                        help="seconds a client may take to send a request body, then 408 "
                             f"(default {d.body_timeout:g})")
    parser.add_argument("--graceful-timeout", type=float, default=d.graceful_timeout,
                        help=f"seconds to let in-flight requests finish on shutdown (default {d.graceful_timeout:g})")
    parser.add_argument("--log-level", default=d.log_level,
                        choices=["critical", "error", "warning", "info", "debug"], help="uvicorn log level")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    """A validated :class:`ServeConfig` from parsed flags (the token from the environment if not given)."""
    if (args.model is None) == (args.model_repository is None):
        raise ServeConfigError("give either MODEL.onnx or --model-repository DIR (exactly one)")
    token = args.auth_token if args.auth_token is not None else (os.environ.get(AUTH_TOKEN_ENV) or None)
    return ServeConfig(host=args.host, port=args.port, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                       workers=args.workers, queue_size=args.queue_size, max_body_bytes=args.max_body_bytes,
                       body_timeout=args.body_timeout, graceful_timeout=args.graceful_timeout,
                       log_level=args.log_level, access_log=args.access_log,
                       model_repository=args.model_repository, repository_poll=args.repository_poll,
                       allow_remote=args.allow_remote, auth_token=token, reject_nonfinite=args.reject_nonfinite,
                       header_timeout=args.header_timeout, keep_alive_timeout=args.keep_alive_timeout,
                       max_connections=args.max_connections, max_header_bytes=args.max_header_bytes).validate()
