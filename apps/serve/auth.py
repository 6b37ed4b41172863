"""Optional bearer-token authentication (``--auth-token`` or ``$GRAPHFORGE_SERVE_AUTH_TOKEN``).

A pure ASGI middleware: every request but the health checks (``/v2/health/*``, ``/healthz``, which
load balancers and orchestrators probe without credentials) must carry
``Authorization: Bearer <token>``; otherwise ``401`` as JSON with ``WWW-Authenticate: Bearer``. The
token is compared in constant time.
"""
from __future__ import annotations

import hmac
import json

__all__ = ["BearerAuthMiddleware", "OPEN_PATHS"]

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/healthz"})
"""Paths answered without a token."""


class BearerAuthMiddleware:
    """Refuse requests without the bearer token; a no-op when ``token`` is None."""

    def __init__(self, app, token: str | None):
        self.app = app
        self.expected = None if token is None else f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if self.expected is None or scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = b""
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                given = value
                break
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        reason = "missing Authorization header" if not given else "wrong bearer token"
        message = f"{reason}: this server requires 'Authorization: Bearer <token>' (--auth-token)"
        body = (json.dumps({"error": message}) if scope.get("path", "").startswith("/v2") or scope.get(
            "path") == "/metrics" else json.dumps({"error": {"type": "UnauthorizedError", "message": message}}))
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body.encode()})
