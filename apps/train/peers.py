"""Failing peers of a multi-process training run end in a typed error within a bounded time.

Three pieces, used by :mod:`graphforge.train.distributed`:

- :func:`rendezvous`: before ``jax.distributed.initialize``, process 0 listens on the coordinator's
  port and every other process says hello; all continue only once all ``num_processes`` are there.
  A process that never starts (or a coordinator that never comes up) is a :class:`PeerFailureError`
  after ``timeout_s``, where jax's own client would abort the whole process from C++ (SIGABRT).
- :func:`guarded`: runs one step / collective in a worker thread and waits at most the watchdog's
  deadline. A collective error from the runtime (gloo: "connection closed by peer", the coordination
  service: "heartbeat timeout"…) or an overrun (a peer stopped answering: the collective would wait
  for ever) becomes a :class:`PeerFailureError`.
- :data:`watchdog`: the run's settings and the newest checkpoint every process completed, which the
  error names so the job can be restarted with ``--resume``.

After a peer failure the distributed runtime cannot shut down cleanly (its exit barrier waits for the
dead peer), so jax's ``atexit`` shutdown is dropped; the CLI additionally ends the process at once.
"""
from __future__ import annotations

import os
import socket
import threading
import time

from ..errors import BackendError

__all__ = ["PeerFailureError", "Watchdog", "watchdog", "guarded", "rendezvous", "is_peer_error"]

_HELLO, _GO = b"graphforge-hello", b"graphforge-go"


class PeerFailureError(BackendError):
    """A peer process or the coordinator of a multi-process run failed, vanished or stopped answering.

    ``checkpoint`` is the newest checkpoint all processes completed (None if none); restart every
    process with ``--resume``. The CLI exits with status 3 (PEER_FAILURE) on it."""

    exit_code = 3

    def __init__(self, message: str, *, checkpoint: str | None = None, **kw):
        self.checkpoint = checkpoint
        super().__init__(message, **kw)


class Watchdog:
    """Settings of the current multi-process run (set by ``distributed.initialize``)."""

    def __init__(self):
        self.timeout_s = 300.0
        self.checkpoint_dir: str | None = None
        self.checkpoint_step: int | None = None
        self.process_id, self.num_processes = 0, 1
        self.failed = False

    def configure(self, *, timeout_s: float, checkpoint_dir: str | None, process_id: int, num_processes: int):
        self.timeout_s, self.checkpoint_dir = float(timeout_s), checkpoint_dir
        self.process_id, self.num_processes = process_id, num_processes
        self.checkpoint_step, self.failed = None, False

    def checkpoint_completed(self, step: int) -> None:
        self.checkpoint_step = step

    def last_checkpoint(self) -> str | None:
        """The newest complete checkpoint: the one this run finished, else the newest in the directory."""
        if self.checkpoint_dir:
            from .checkpoint import latest_checkpoint

            try:
                found = latest_checkpoint(self.checkpoint_dir)
            except Exception:  # noqa: BLE001 - naming a checkpoint is best effort inside an error path
                found = None
            if found:
                return str(found)
        if self.checkpoint_step is not None:
            return f"ckpt-{self.checkpoint_step:08d}"
        return None

    def failure(self, what: str, cause: str) -> PeerFailureError:
        """The typed error for a failed ``what``; also drops jax's exit barrier (it would hang)."""
        self.failed = True
        _drop_jax_shutdown()
        ckpt = self.last_checkpoint()
        where = f"process {self.process_id} of {self.num_processes}"
        resume = (f"last good checkpoint: {ckpt}; restart every process with --resume" if ckpt else
                  "no checkpoint was completed; restart the job (pass --checkpoint-dir to be able to resume)")
        return PeerFailureError(f"{where}: {what} failed: {cause}", checkpoint=ckpt, hint=resume)


watchdog = Watchdog()


def _drop_jax_shutdown() -> None:
    import atexit

    try:
        from jax._src import distributed as _jd

        atexit.unregister(_jd.shutdown)
    except Exception:  # noqa: BLE001 - an older/newer jax without it: nothing registered to drop
        pass


_PEER_WORDS = ("gloo", "connection closed", "connection reset", "peer", "heartbeat", "unavailable",
               "deadline_exceeded", "deadline exceeded", "barrier", "coordination service", "socket closed",
               "broken pipe", "task", "preempted")


def is_peer_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the runtime reporting a lost peer (a jax/XLA runtime error about the
    collectives or the coordination service), as opposed to a bug or a user error."""
    name = type(exc).__name__
    if name not in ("JaxRuntimeError", "XlaRuntimeError") and not (isinstance(exc, RuntimeError)
                                                                    and "jax" in type(exc).__module__):
        return False
    text = str(exc).lower()
    return any(w in text for w in _PEER_WORDS)


def guarded(fn, *args, what: str = "a collective", timeout_s: float | None = None):
    """``fn(*args)`` under the watchdog: its result, its own exception, or a :class:`PeerFailureError`
    when it reports a lost peer or does not finish within the deadline."""
    if watchdog.failed:
        raise watchdog.failure(what, "an earlier collective of this run already lost a peer")
    limit = watchdog.timeout_s if timeout_s is None else timeout_s
    x64 = _x64_state()
    box: dict = {}

    def body():
        try:
            with _x64_scope(x64):  # jax's x64 switch is thread-local: carry the caller's
                box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=body, name=f"graphforge-watchdog: {what}", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():  # the collective waits for a peer that is gone or stuck: it will never return
        raise watchdog.failure(what, f"no progress within {limit:g} s (a peer process died or stopped "
                                     "answering); raise --coordinator-timeout if steps are that slow")
    if "error" in box:
        exc = box["error"]
        if is_peer_error(exc):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise watchdog.failure(what, f"a peer process is gone ({type(exc).__name__}: {first[:300]})") from None
        raise exc
    return box.get("value")


def _x64_state():
    try:
        from jax._src import config as _cfg

        return bool(_cfg.enable_x64.value)
    except Exception:  # noqa: BLE001
        return None


class _x64_scope:
    def __init__(self, state):
        self.state, self.ctx = state, None

    def __enter__(self):
        if self.state is not None:
            import jax

            self.ctx = jax.enable_x64(self.state)
            self.ctx.__enter__()

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


# ---- the pre-flight rendezvous ---------------------------------------------------------------------

def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def rendezvous(address: str, num_processes: int, process_id: int, *, timeout_s: float) -> float:
    """Wait until all ``num_processes`` processes have reached ``address`` (process 0 listens on it);
    returns the seconds of ``timeout_s`` left. :class:`PeerFailureError` names who is missing."""
    if num_processes <= 1:
        return timeout_s
    deadline = time.monotonic() + timeout_s
    host, port = _split(address)
    if process_id == 0:
        _host_rendezvous(host, port, num_processes, deadline, timeout_s)
    else:
        _join_rendezvous(host, port, num_processes, process_id, deadline, timeout_s)
    return max(1.0, deadline - time.monotonic())


def _fail(what: str, cause: str) -> PeerFailureError:
    watchdog.failed = False  # nothing was started: no jax runtime to abandon
    return PeerFailureError(f"{what}: {cause}", hint="start all processes with the same --coordinator and "
                            "--num-processes within --coordinator-timeout seconds of each other")


def _host_rendezvous(host: str, port: int, n: int, deadline: float, timeout_s: float) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            listener.bind((host, port))
        except OSError as exc:
            raise _fail(f"process 0 of {n}", f"cannot listen on the coordinator address {host}:{port} "
                        f"({exc.strerror or exc})") from None
        listener.listen(n)
        joined: dict[int, socket.socket] = {}
        try:
            while len(joined) < n - 1:
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(set(range(1, n)) - set(joined))
                    raise _fail(f"process 0 of {n}", f"process(es) {missing} did not reach the coordinator "
                                f"{host}:{port} within {timeout_s:g} s (joined: {sorted({0, *joined})})")
                listener.settimeout(min(left, 1.0))
                try:
                    conn, _ = listener.accept()
                except socket.timeout:
                    continue
                pid = _read_hello(conn, n, deadline)
                if pid is None or pid in joined:
                    conn.close()  # not one of ours (a port scanner, a duplicate id): ignore it
                    continue
                joined[pid] = conn
            for conn in joined.values():
                conn.sendall(_GO + b"\n")
            for conn in joined.values():  # the peers close first, so no TIME_WAIT holds jax's port
                conn.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    conn.recv(16)
                except OSError:
                    pass
        finally:
            for conn in joined.values():
                conn.close()
    finally:
        listener.close()


def _read_hello(conn: socket.socket, n: int, deadline: float) -> int | None:
    conn.settimeout(max(0.1, min(5.0, deadline - time.monotonic())))
    try:
        line = conn.recv(64).strip().split()
    except OSError:
        return None
    if len(line) != 3 or line[0] != _HELLO:
        return None
    try:
        pid, count = int(line[1]), int(line[2])
    except ValueError:
        return None
    if count != n:
        conn.close()
        raise _fail(f"process 0 of {n}", f"process {pid} was started with --num-processes {count}")
    return pid if 0 < pid < n else None


def _join_rendezvous(host: str, port: int, n: int, pid: int, deadline: float, timeout_s: float) -> None:
    where = f"process {pid} of {n}"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _fail(where, f"the coordinator {host}:{port} (process 0) was not reachable within {timeout_s:g} s")
        try:
            conn = socket.create_connection((host, port), timeout=min(left, 2.0))
        except OSError:
            time.sleep(min(0.2, max(0.0, left)))
            continue
        with conn:
            try:
                conn.sendall(b"%s %d %d\n" % (_HELLO, pid, n))
                conn.settimeout(max(0.1, deadline - time.monotonic()))
                reply = conn.recv(64)
            except socket.timeout:
                raise _fail(where, f"the other processes did not all reach the coordinator {host}:{port} "
                                   f"within {timeout_s:g} s") from None
            except OSError:
                reply = b""
            if reply.strip() == _GO:
                return
            if not reply:  # process 0 gave up (or refused us): its error names the cause
                raise _fail(where, f"the coordinator {host}:{port} (process 0) ended the rendezvous without "
                                   "starting the run (see process 0's error)")
