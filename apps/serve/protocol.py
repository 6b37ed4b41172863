"""uvicorn's HTTP/1.1 (h11) protocol, hardened for a server that faces untrusted clients.

uvicorn bounds an idle keep-alive connection only *after* a first response, and never bounds a
client that sends part of a header and stops: such connections hold a file descriptor for ever,
outside any request queue. :func:`hardened_protocol` makes a protocol class that adds:

- a **header timeout**: from the moment a connection is opened, or is back waiting after an
  answer, a client has ``header_timeout`` seconds to finish a request's headers. A client that has
  sent nothing is closed quietly (an idle connection); one that sent part of a header gets
  ``408`` as JSON, then the connection is closed.
- a **connection cap**: connections beyond ``max_connections`` are answered ``503`` (JSON,
  ``Connection: close``) on their first request instead of reaching the app.
- **JSON for protocol errors**: a request h11 cannot parse (or whose headers are larger than the
  limit) gets ``400 {"error": ...}`` instead of uvicorn's plain text.
- a **bounded drain after early answers**: when the app answers before reading the whole body
  (413, 503, 401), uvicorn keeps reading and discarding the rest so the client sees the status,
  not a reset; the drain is bounded by ``linger`` seconds, then the connection is closed.
"""
from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["hardened_protocol", "json_error_response"]


def json_error_response(status: int, reason: str, message: str, *, close: bool = True) -> bytes:
    """A complete raw HTTP/1.1 error response with a JSON body."""
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n" + ("connection: close\r\n" if close else "") + "\r\n")
    return head.encode("ascii") + body


async def _over_capacity(scope, receive, send) -> None:
    """The app of a connection over the cap: drain the body (5 s at most), answer 503 and close."""
    more = True
    try:
        async with asyncio.timeout(5.0):
            while more:
                message = await receive()
                more = message.get("more_body", False) and message["type"] == "http.request"
    except TimeoutError:
        pass  # answer anyway; the close may then reset a client still sending
    body = json.dumps({"error": "too many open connections (--max-connections); retry later"}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                            (b"connection", b"close"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def hardened_protocol(*, header_timeout: float, max_connections: int, linger: float) -> type[H11Protocol]:
    """An ``H11Protocol`` subclass with the limits above (pass it as uvicorn's ``http=``)."""

    class HardenedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _linger_timer: asyncio.TimerHandle | None = None
        _got_bytes = False

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self.app = _over_capacity
            self._arm_header_timer()

        def connection_lost(self, exc) -> None:
            self._cancel_timers()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE and data:
                self._got_bytes = True
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE and self._header_timer is not None:
                self._header_timer.cancel()  # the request line and headers are in
                self._header_timer = None
            if self._linger_timer is not None and self.conn.their_state is h11.IDLE:
                self._linger_timer.cancel()  # the early-answered body is drained: a normal keep-alive
                self._linger_timer = None
                self._got_bytes = False
                self._arm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.transport.is_closing():
                return
            if self.conn.their_state is h11.SEND_BODY:
                # Answered early (413/503/401) while the body still comes: keep reading it (uvicorn
                # discards it) so the client gets the status, but not for longer than `linger`.
                if self._linger_timer is None:
                    self._linger_timer = self.loop.call_later(linger, self._close_quietly)
            elif self.conn.their_state is h11.IDLE:
                self._got_bytes = False
                self._arm_header_timer()

        def send_400_response(self, msg: str) -> None:
            detail = ("malformed HTTP request: the request line or headers could not be parsed, "
                      "or are larger than --max-header-bytes")
            self._cancel_timers()
            self.transport.write(json_error_response(400, "Bad Request", detail))
            self.transport.close()

        # -- timers ----------------------------------------------------------------------------
        def _arm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(header_timeout, self._header_timeout_expired)

        def _header_timeout_expired(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self._got_bytes:
                self.transport.write(json_error_response(
                    408, "Request Timeout",
                    f"the request headers did not arrive within {header_timeout:g} s (--header-timeout)"))
            self._close_quietly()

        def _close_quietly(self) -> None:
            self._cancel_timers()
            if not self.transport.is_closing():
                self.transport.close()

        def _cancel_timers(self) -> None:
            for attr in ("_header_timer", "_linger_timer"):
                timer = getattr(self, attr)
                if timer is not None:
                    timer.cancel()
                    setattr(self, attr, None)

    return HardenedH11Protocol
