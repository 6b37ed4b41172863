"""Options of ``graphforge serve``: the :class:`ServeConfig` record and its command-line flags.

Kept free of Starlette/uvicorn/onnxruntime imports so the CLI can build its parser (``--help``)
without the ``serve`` extra installed.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from .errors import ServeConfigError

__all__ = ["ServeConfig", "add_arguments", "config_from_args"]


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
    intra_op_threads: int = 0
    graceful_timeout: float = 30.0
    log_level: str = "info"
    access_log: bool = False

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
            (self.intra_op_threads >= 0, f"--intra-op-threads must be >= 0, got {self.intra_op_threads}"),
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
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX model to serve")
    parser.add_argument("--host", default=d.host,
                        help=f"address to bind, and only that one (default {d.host}, loopback)")
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
    parser.add_argument("--intra-op-threads", type=int, default=d.intra_op_threads,
                        help="onnxruntime threads per call, 0 for its default")
    parser.add_argument("--graceful-timeout", type=float, default=d.graceful_timeout,
                        help=f"seconds to let in-flight requests finish on shutdown (default {d.graceful_timeout:g})")
    parser.add_argument("--log-level", default=d.log_level,
                        choices=["critical", "error", "warning", "info", "debug"], help="uvicorn log level")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    """A validated :class:`ServeConfig` from parsed flags."""
    return ServeConfig(host=args.host, port=args.port, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                       workers=args.workers, queue_size=args.queue_size, max_body_bytes=args.max_body_bytes,
                       body_timeout=args.body_timeout,
                       intra_op_threads=args.intra_op_threads, graceful_timeout=args.graceful_timeout,
                       log_level=args.log_level, access_log=args.access_log).validate()
