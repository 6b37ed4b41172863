"""A server facing hostile or careless clients: header and idle timeouts (raw sockets), the connection
cap, JSON protocol errors, early 413s that reach the client, remote-bind opt-in, bearer-token auth
and ``--reject-nonfinite``."""
from __future__ import annotations

import argparse
import json
import socket
import struct
import time

import numpy as np
import pytest

from serve_helpers import HTTP_TIMEOUT, running

from graphforge.serve import InferenceServer, ServeConfig, ServeConfigError
from graphforge.serve.config import AUTH_TOKEN_ENV, add_arguments, config_from_args


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_until_closed(sock: socket.socket, limit: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    start, data = time.monotonic(), b""
    sock.settimeout(limit)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - start


def _send_slowly(sock: socket.socket, data: bytes, size: int, pause: float = 0.02) -> None:
    """Send ``data`` in pieces; stop quietly once the server has answered and closed its side."""
    for i in range(0, len(data), size):
        try:
            sock.sendall(data[i:i + size])
        except (BrokenPipeError, ConnectionResetError):
            return
        time.sleep(pause)


def _status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_half_sent_headers_get_408_and_are_closed(models):
    with running(models["small"], header_timeout=0.5) as (server, client):
        socks = [_connect(server) for _ in range(40)]
        for s in socks:
            s.sendall(b"POST /v2/models/small/infer HTTP/1.1\r\nHost: x\r\nContent-Le")
        silent = _connect(server)  # connected, never sends a byte
        # meanwhile the server answers others
        assert client.get("/v2/health/ready").status_code == 200
        raw, took = _read_until_closed(socks[0])
        status, body = _status_and_json(raw)
        assert status == 408 and "--header-timeout" in body["error"]
        assert took < 3.0
        for s in socks[1:]:
            raw, _ = _read_until_closed(s, limit=3.0)
            assert raw.startswith(b"HTTP/1.1 408")
            s.close()
        raw, took = _read_until_closed(silent)
        assert raw == b"" and took < 3.0  # an idle connection is closed without a word
        socks[0].close()
        silent.close()


def test_idle_keep_alive_is_closed(models):
    with running(models["small"], keep_alive_timeout=0.5, header_timeout=5) as (server, client):
        s = _connect(server)
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        raw, took = _read_until_closed(s)
        assert raw.startswith(b"HTTP/1.1 200") and took < 3.0
        s.close()


def test_connection_cap_answers_503_as_json(models):
    with running(models["small"], max_connections=3, header_timeout=5) as (server, client):
        client.get("/v2/health/live")  # the client's own keep-alive connection is one of the three
        idle = [_connect(server) for _ in range(2)]
        time.sleep(0.2)
        extra = _connect(server)
        extra.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        raw, _ = _read_until_closed(extra)
        status, body = _status_and_json(raw)
        assert status == 503 and "--max-connections" in body["error"]
        for s in idle + [extra]:
            s.close()
        time.sleep(0.2)
        assert client.get("/v2/health/live").status_code == 200


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET /v2 HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
], ids=["request-line", "header-syntax", "header-too-large"])
def test_protocol_errors_are_json_400(models, request_bytes):
    with running(models["small"], max_header_bytes=8192) as (server, client):
        s = _connect(server)
        # in pieces, as a slow client sends: the header limit bounds what is buffered unfinished
        _send_slowly(s, request_bytes, 4096)
        raw, _ = _read_until_closed(s)
        status, body = _status_and_json(raw)
        assert status == 400 and "malformed HTTP request" in body["error"]
        assert b"content-type: application/json" in raw.lower()
        s.close()


def test_early_413_reaches_a_client_still_sending(models):
    with running(models["small"], max_body_bytes=1 << 20) as (server, client):
        s = _connect(server)
        s.sendall(b"POST /v2/models/small/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 50000000\r\n\r\n")
        _send_slowly(s, b" " * (2 << 20), 65536, pause=0)  # past the limit, the answer already on its way
        s.settimeout(10)
        raw = s.recv(65536)
        assert raw.startswith(b"HTTP/1.1 413"), raw[:100]
        assert "--max-body-bytes" in json.loads(raw.partition(b"\r\n\r\n")[2])["error"]
        s.close()
        # and over httpx: the status, not a reset
        resp = client.post("/v2/models/small/infer", content=b"x" * (3 << 20))
        assert resp.status_code == 413


def test_remote_bind_needs_opt_in_and_warns(models, capsys):
    with pytest.raises(ServeConfigError, match="--allow-remote"):
        ServeConfig(host="0.0.0.0").validate()
    with pytest.raises(ServeConfigError, match="--allow-remote"):
        InferenceServer(models["small"], ServeConfig(host="::", port=0))
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        ServeConfig(host=host).validate()
    # opted in: constructed (not bound here: tests stay on loopback) with a warning on stderr
    InferenceServer(models["small"], ServeConfig(host="0.0.0.0", port=0, allow_remote=True))
    err = capsys.readouterr().err
    assert "WARNING" in err and "0.0.0.0" in err and "NO authentication" in err
    parser = add_arguments(argparse.ArgumentParser())
    with pytest.raises(ServeConfigError, match="--allow-remote"):
        config_from_args(parser.parse_args([models["small"], "--host", "0.0.0.0"]))
    assert config_from_args(parser.parse_args([models["small"], "--host", "0.0.0.0", "--allow-remote"])).allow_remote
    with pytest.raises(ServeConfigError, match="exactly one"):
        config_from_args(parser.parse_args([models["small"], "--model-repository", "."]))


def test_bearer_token(models, monkeypatch):
    token = "s3cret-token-123"
    with running(models["small"], auth_token=token) as (server, client):
        body = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [1.0] * 6}]}
        no = client.post("/v2/models/small/infer", json=body)
        assert no.status_code == 401 and no.headers["www-authenticate"] == "Bearer"
        assert "missing Authorization" in no.json()["error"]
        wrong = client.get("/v2/models/small", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "wrong bearer token" in wrong.json()["error"]
        assert client.get("/metrics").status_code == 401
        assert client.post("/v1/predict", json=[[1.0] * 6]).json()["error"]["type"] == "UnauthorizedError"
        ok = {"Authorization": f"Bearer {token}"}
        assert client.post("/v2/models/small/infer", json=body, headers=ok).status_code == 200
        assert client.get("/metrics", headers=ok).status_code == 200
        assert client.get("/v2/health/ready").status_code == 200  # probes need no token
        assert client.get("/healthz").status_code == 200
        httpclient = pytest.importorskip("tritonclient.http")
        tc = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        try:
            assert tc.get_model_metadata("small", headers=ok)["name"] == "small"
        finally:
            tc.close()
    monkeypatch.setenv(AUTH_TOKEN_ENV, token)
    args = add_arguments(argparse.ArgumentParser()).parse_args([models["small"]])
    assert config_from_args(args).auth_token == token
    with pytest.raises(ServeConfigError, match="at least 8"):
        ServeConfig(auth_token="short").validate()


def test_reject_nonfinite(models):
    nan_json = b'{"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [1, 2, NaN, 4, 5, 6]}]}'
    x = np.ones((1, 6), np.float32)
    x[0, 3] = np.inf
    head = json.dumps({"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32",
                                   "parameters": {"binary_data_size": 24}}]}).encode()
    binary = head + x.tobytes()
    with running(models["small"], reject_nonfinite=True) as (server, client):
        resp = client.post("/v2/models/small/infer", content=nan_json)
        assert resp.status_code == 400 and "--reject-nonfinite" in resp.json()["error"]
        resp = client.post("/v2/models/small/infer", content=binary,
                           headers={"Inference-Header-Content-Length": str(len(head))})
        assert resp.status_code == 400 and "NaN or infinity" in resp.json()["error"]
        npy = __import__("io").BytesIO()
        np.save(npy, x)
        resp = client.post("/v1/predict", content=npy.getvalue(), headers={"Content-Type": "application/x-npy"})
        assert resp.status_code == 400
    with running(models["small"]) as (server, client):
        assert client.post("/v2/models/small/infer", content=nan_json).status_code == 200
