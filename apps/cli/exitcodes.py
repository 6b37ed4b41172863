"""The exit statuses of every ``graphforge`` command: one table, so scripts and schedulers can tell
failures apart the same way whichever command they ran (documented in docs/cli.md).

=====  =================  ==========================================================================
code   name               meaning
=====  =================  ==========================================================================
0      OK                 done
1      CHECK_FAILED       the command ran, and a check it was asked to make failed: ``compile
                          --verify`` or ``optimize``'s output comparison found a difference, a
                          ``bench`` back end failed
2      USAGE              the input is wrong: bad arguments, a missing, unreadable, invalid or
                          hostile file, a model that does not trace (every typed ``GraphforgeError``
                          not listed below); nothing was written
3      PEER_FAILURE       distributed training lost a peer or its coordinator (start timeout, a
                          process died, a collective timed out); restart the job with ``--resume``
70     INTERNAL           a bug in graphforge (an unexpected exception; set GRAPHFORGE_TRACEBACK=1
                          for the traceback)
130    INTERRUPTED        stopped by Ctrl-C / SIGINT
=====  =================  ==========================================================================
"""
from __future__ import annotations

import os
import sys
import traceback

__all__ = ["OK", "CHECK_FAILED", "USAGE", "PEER_FAILURE", "INTERNAL", "INTERRUPTED", "code_for",
           "report", "TABLE", "exit_if_runtime_abandoned"]

OK = 0
CHECK_FAILED = 1
USAGE = 2
PEER_FAILURE = 3
INTERNAL = 70
INTERRUPTED = 130

TABLE = {OK: "OK", CHECK_FAILED: "CHECK_FAILED", USAGE: "USAGE", PEER_FAILURE: "PEER_FAILURE",
         INTERNAL: "INTERNAL", INTERRUPTED: "INTERRUPTED"}


def code_for(exc: BaseException) -> int:
    """The exit status for an exception that ended a command.

    A typed error chooses its own status with an ``exit_code`` class attribute (the distributed
    trainer's peer failures say :data:`PEER_FAILURE`); every other ``GraphforgeError`` and an
    ``OSError`` on the user's files is :data:`USAGE`."""
    from graphforge.errors import GraphforgeError

    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(exc, GraphforgeError):
        code = getattr(exc, "exit_code", USAGE)
        return code if code in TABLE else USAGE
    if isinstance(exc, OSError):
        return USAGE
    return INTERNAL


def exit_if_runtime_abandoned(code: int) -> None:
    """End the process now when a multi-process run lost a peer after jax's runtime started: its
    threads and exit barrier wait for the dead peer, so a normal interpreter exit would hang."""
    peers = sys.modules.get("graphforge.train.peers")
    if peers is not None and peers.watchdog.failed:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def report(command: str, exc: BaseException, *, stream=None) -> int:
    """Print the one-line ``graphforge <command>: …`` message for ``exc`` and return its status.

    Unexpected exceptions are bugs: they say so, and show the traceback only when
    ``GRAPHFORGE_TRACEBACK=1`` (a raw stack is not an error message)."""
    stream = stream or sys.stderr
    code = code_for(exc)
    if code == INTERRUPTED:
        print(f"graphforge {command}: interrupted", file=stream)
    elif code == INTERNAL:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"graphforge {command}: internal error: {type(exc).__name__}: {first}\n"
              "  this is a bug in graphforge; set GRAPHFORGE_TRACEBACK=1 for the traceback", file=stream)
        if os.environ.get("GRAPHFORGE_TRACEBACK") == "1":
            traceback.print_exception(exc, file=stream)
    elif isinstance(exc, OSError):
        print(f"graphforge {command}: {exc.strerror or exc}"
              + (f": {exc.filename!r}" if getattr(exc, "filename", None) else ""), file=stream)
    else:
        print(f"graphforge {command}: {exc}", file=stream)
    return code

