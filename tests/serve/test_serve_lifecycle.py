"""Server lifecycle: graceful shutdown drains in-flight requests, loopback-only binding, option
checks, the ``python -m graphforge.serve`` entry point under SIGTERM, and a graphforge-exported model."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from gf_testutil import free_port
from serve_helpers import HTTP_TIMEOUT, Gate, first_answer, ort_run, running, wait_for

from graphforge.serve import InferenceServer, ServeConfig, ServeConfigError
from graphforge.serve.config import add_arguments, config_from_args


def _refuses_connections(host, port) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return False
    except OSError:
        return True


def test_graceful_shutdown_drains_in_flight_requests(models):
    server = InferenceServer(models["small"], ServeConfig(port=0, log_level="warning", graceful_timeout=20))
    server.start(timeout=20)
    gate = Gate(server.service.runner)
    try:
        with httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as client, ThreadPoolExecutor(4) as pool:
            running_req = pool.submit(client.post, "/v1/predict", json=[[1.0] * 6])
            gate.wait_entered()
            queued_req = pool.submit(client.post, "/v1/predict", json=[[2.0] * 6, [3.0] * 6])
            wait_for(lambda: server.service.batcher.queue_depth == 1, what="a queued request")
            stopping = pool.submit(server.stop, 20)
            wait_for(lambda: _refuses_connections("127.0.0.1", server.port), what="the listener to close")
            assert not stopping.done()  # still waiting for the two requests
            gate.open()
            r1, r2 = running_req.result(20), queued_req.result(20)
            assert stopping.result(20) is True
        assert r1.status_code == 200 and r2.status_code == 200
        want = ort_run(models["small"], {"x": np.array([[1.0] * 6, [2.0] * 6, [3.0] * 6], np.float32)})[0]
        np.testing.assert_allclose(r1.json()["outputs"]["y"], want[:1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r2.json()["outputs"]["y"], want[1:], rtol=1e-5, atol=1e-6)
        assert server.service.batcher.stopping and server.service.draining
    finally:
        gate.restore()
        server.stop(5)


def test_binds_loopback_only_by_default(models):
    assert ServeConfig().host == "127.0.0.1"
    args = add_arguments(__import__("argparse").ArgumentParser()).parse_args([models["small"]])
    config = config_from_args(args)
    assert (config.host, config.port, config.max_batch, config.max_wait_ms) == ("127.0.0.1", 8000, 64, 2.0)
    with running(models["small"]) as (server, client):
        assert server.service.config.host == "127.0.0.1"
        assert server._sock.getsockname()[0] == "127.0.0.1"
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("options,needle", [
    ({"max_batch": 0}, "--max-batch"), ({"max_wait_ms": -1}, "--max-wait-ms"), ({"workers": 0}, "--workers"),
    ({"queue_size": 0}, "--queue-size"), ({"max_body_bytes": 0}, "--max-body-bytes"),
    ({"body_timeout": 0}, "--body-timeout"),
    ({"port": 70000}, "--port"), ({"host": "no-such-host.invalid"}, "cannot resolve"),
])
def test_bad_options_are_typed_errors(models, options, needle):
    with pytest.raises(ServeConfigError, match=re.escape(needle)):
        server = InferenceServer(models["small"], ServeConfig(**{"port": 0, **options}))
        server.start(timeout=10)
        server.stop(5)


def test_bad_model_file_is_a_load_error(tmp_path):
    from graphforge.errors import LoadError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"definitely not protobuf")
    with pytest.raises(LoadError, match="not a valid ONNX model"):
        InferenceServer(str(bad))
    with pytest.raises(LoadError, match="cannot read model"):
        InferenceServer(str(tmp_path / "missing.onnx"))


def test_module_entry_point_serves_and_stops_on_sigterm(models):
    port = free_port()  # a free loopback port for the child
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "graphforge.serve", models["small"], "--port", str(port),
                             "--log-level", "warning"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = proc.stderr.readline()
        assert f"http://127.0.0.1:{port}" in banner, banner
        r = first_answer(f"http://127.0.0.1:{port}/healthz", proc)
        assert r.status_code == 200
        r = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json=[[0.5] * 6], timeout=HTTP_TIMEOUT)
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stderr.close()


def test_module_entry_point_reports_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "graphforge.serve", str(tmp_path / "missing.onnx"), "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "cannot read model" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_subcommand(tmp_path, capsys):
    import argparse

    from graphforge.cli import serve as cli_serve

    parser = argparse.ArgumentParser(prog="graphforge")
    sub = parser.add_subparsers(dest="command")
    cli_serve.add_parser(sub)
    args = parser.parse_args(["serve", "m.onnx", "--max-batch", "8", "--max-wait-ms", "0", "--workers", "2",
                              "--queue-size", "5", "--max-body-bytes", "1000", "--body-timeout", "2.5"])
    assert (args.command, args.model, args.host, args.port) == ("serve", "m.onnx", "127.0.0.1", 8000)
    config = config_from_args(args)
    assert (config.max_batch, config.max_wait_ms, config.workers, config.queue_size, config.max_body_bytes,
            config.body_timeout, config.batching) == (8, 0.0, 2, 5, 1000, 2.5, False)
    assert cli_serve.run(parser.parse_args(["serve", str(tmp_path / "missing.onnx"), "--port", "0"])) == 2
    assert cli_serve.run(parser.parse_args(["serve", "m.onnx", "--max-batch", "0"])) == 2
    err = capsys.readouterr().err
    assert "cannot read model" in err and "--max-batch must be >= 1" in err
    import graphforge.cli as cli_pkg

    if hasattr(cli_pkg, "SUBCOMMANDS"):  # the CLI package's registry lists us
        assert "serve" in cli_pkg.SUBCOMMANDS
