"""Running the app under uvicorn: in the foreground (``graphforge serve``) or in a background thread.

The listening socket is bound here, to exactly the host given (loopback by default), so a busy
port or a bad address is a typed error before uvicorn starts, and port 0 picks a free port
whose number is known at once. Shutdown is graceful: uvicorn stops accepting connections, lets
in-flight requests finish (``graceful_timeout``), then the app's lifespan drains the batcher.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time

from .config import ServeConfig, config_from_args

__all__ = ["InferenceServer", "serve", "bind_socket", "run_from_args"]

log = logging.getLogger("graphforge.serve")


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv4 or IPv6 as ``host`` says), not yet listening."""
    from .errors import ServeConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeConfigError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ServeConfigError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _uvicorn_server(app, config: ServeConfig, host: str, port: int):
    import contextlib

    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown (the process then dies of
        the signal); ``graphforge serve`` instead returns normally, with exit status 0."""

        signalled: list = []

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                try:
                    yield
                finally:
                    captured = getattr(self, "_captured_signals", None)
                    if isinstance(captured, list):
                        self.signalled = list(captured)
                        captured.clear()

    from .protocol import hardened_protocol

    protocol = hardened_protocol(header_timeout=config.header_timeout, max_connections=config.max_connections,
                                 linger=min(config.body_timeout, 5.0))
    uv_config = uvicorn.Config(app, host=host, port=port, lifespan="on", log_level=config.log_level,
                               access_log=config.access_log, http=protocol,
                               timeout_graceful_shutdown=config.graceful_timeout,
                               timeout_keep_alive=config.keep_alive_timeout,
                               h11_max_incomplete_event_size=config.max_header_bytes,
                               backlog=max(128, min(config.max_connections, 4096)),
                               server_header=False)
    return _Server(uv_config)


class InferenceServer:
    """A server in a background thread (tests, benchmarks, notebooks)::

        with InferenceServer("mlp.onnx", ServeConfig(port=0)) as srv:
            httpx.post(srv.url + "/v1/predict", json={"inputs": {"x": [[...]]}})
    """

    def __init__(self, model=None, config: ServeConfig | None = None):
        from .app import create_app

        self.config = (config or ServeConfig(port=0, log_level="warning")).validate()
        _warn_if_remote(self.config)
        self.app = create_app(model, self.config)
        self.service = self.app.state.service
        self._sock: socket.socket | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.host = self.config.host
        self.port: int | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> "InferenceServer":
        """Bind, start serving in a daemon thread, and wait until it accepts connections."""
        from .errors import ServeError

        self._sock = bind_socket(self.config.host, self.config.port)
        self.port = self._sock.getsockname()[1]
        self._server = _uvicorn_server(self.app, self.config, self.config.host, self.port)

        def target():
            try:
                self._server.run(sockets=[self._sock])
            except BaseException as exc:  # surfaced by start()/stop()
                self._error = exc

        self._thread = threading.Thread(target=target, name="graphforge-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop(timeout=5.0)
                raise ServeError(f"the server did not start within {timeout:g} s"
                                 + (f": {self._error}" if self._error else ""))
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Graceful shutdown; True when the server thread ended within ``timeout`` seconds."""
        if self._server is not None:
            self._server.should_exit = True
        ended = True
        if self._thread is not None:
            self._thread.join(timeout)
            ended = not self._thread.is_alive()
            if not ended and self._server is not None:
                self._server.force_exit = True
                self._thread.join(5.0)
        if self._sock is not None:
            self._sock.close()
        return ended

    def __enter__(self) -> "InferenceServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _warn_if_remote(config: ServeConfig) -> None:
    from .config import is_loopback

    if is_loopback(config.host) is False:
        auth = "bearer-token auth on" if config.auth_token else "NO authentication (see --auth-token)"
        print(f"graphforge serve: WARNING: --host {config.host} with --allow-remote: other machines can reach "
              f"this server; plain HTTP, {auth}", file=sys.stderr, flush=True)


def serve(model: str | os.PathLike | None = None, config: ServeConfig | None = None) -> None:
    """Serve ``model`` (or ``config.model_repository``) in the foreground until SIGINT/SIGTERM."""
    from .app import create_app

    config = (config or ServeConfig()).validate()
    _warn_if_remote(config)
    app = create_app(model, config)
    sock = bind_socket(config.host, config.port)
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    repository = app.state.service.repository
    served = ", ".join(f"{mv.name}/{mv.version} (sha256 {mv.runner.sha256[:12]}, batching "
                       f"{'on' if mv.batcher.batching else 'off'})" for mv in repository.loaded())
    providers = ", ".join(repository.loaded()[0].runner.providers)
    print(f"graphforge serve: {served} on http://{host}:{port}  [{providers}]", file=sys.stderr, flush=True)
    try:
        _uvicorn_server(app, config, config.host, port).run(sockets=[sock])
    finally:
        sock.close()


def run_from_args(args: argparse.Namespace) -> int:
    """``graphforge serve`` behind the CLI: 0 after a clean shutdown, 2 on a user error."""
    from graphforge.errors import GraphforgeError

    try:
        config = config_from_args(args)
        serve(args.model, config)
    except GraphforgeError as exc:
        print(f"graphforge serve: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"graphforge serve: error: {exc}; install the extra: pip install 'graphforge[serve]'",
              file=sys.stderr)
        return 2
    return 0
