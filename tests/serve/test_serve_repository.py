"""The model repository: several models and versions, index/load/unload, hot reload under load with no
failed request, polling, per-model config.json, and start-up errors."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time

import httpx
import numpy as np
import pytest

from gf_testutil import free_port
from serve_helpers import HTTP_TIMEOUT, Gate, first_answer, mlp_model, ort_run, two_input_model, wait_for

from graphforge.errors import LoadError
from graphforge.serve import InferenceServer, ServeConfig


def _add_version(repo, name, version, seed, dims=(6, 8, 3)):
    """Write repo/name/version/model.onnx atomically: built in a hidden dir, then renamed into place."""
    hidden = repo / name / f".tmp-{version}"
    hidden.mkdir(parents=True)
    mlp_model(hidden / "model.onnx", *dims, seed=seed)
    os.replace(hidden, repo / name / str(version))
    return str(repo / name / str(version) / "model.onnx")


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    _add_version(root, "mlp", 1, seed=1)
    _add_version(root, "mlp", 2, seed=2)
    (root / "two").mkdir()
    (root / "two" / "1").mkdir()
    two_input_model(root / "two" / "1" / "model.onnx")
    (root / "two" / "config.json").write_text(json.dumps({"max_batch": 4, "inputs": ["a", "b"]}))
    return root


def _serve_repo(root, **options):
    options.setdefault("log_level", "warning")
    return InferenceServer(None, ServeConfig(host="127.0.0.1", port=0, model_repository=str(root), **options))


def _infer(client, model, x, version=None):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return client.post(path, json={"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                               "data": x.ravel().tolist()}]})


def _y(resp):
    out = resp.json()["outputs"][0]
    return np.reshape(out["data"], out["shape"])


def test_several_models_and_versions(repo):
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(2, 6)
    with _serve_repo(repo) as server, httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as client:
        index = client.post("/v2/repository/index").json()
        assert [(e["name"], e["version"], e["state"]) for e in index] == [
            ("mlp", "1", "READY"), ("mlp", "2", "READY"), ("two", "1", "READY")]
        latest = _infer(client, "mlp", x)
        assert latest.json()["model_version"] == "2"
        np.testing.assert_allclose(_y(latest), ort_run(str(repo / "mlp/2/model.onnx"), {"x": x})[0], rtol=1e-5)
        v1 = _infer(client, "mlp", x, version="1")
        np.testing.assert_allclose(_y(v1), ort_run(str(repo / "mlp/1/model.onnx"), {"x": x})[0], rtol=1e-5)
        assert client.get("/v2/models/mlp").json()["versions"] == ["1", "2"]
        assert client.get("/v2/models/two").json()["inputs"][0]["name"] == "a"
        assert server.service.repository.get("two").batcher.max_batch == 4  # from config.json
        # /v1 serves one model only; with two it says where to go
        resp = client.post("/v1/predict", json=[[0.0] * 6])
        assert resp.status_code == 404 and "/v2/models/<name>/infer" in resp.json()["error"]["message"]


def test_load_unload_and_reload_under_load_fail_no_request(repo):
    x = np.ones((1, 6), np.float32)
    results, stop = [], threading.Event()

    def client_loop(url):
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as c:
            while not stop.is_set():
                r = _infer(c, "mlp", x)
                results.append((r.status_code, r.json().get("model_version")))

    with _serve_repo(repo, repository_poll=0) as server, \
            httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as client:
        threads = [threading.Thread(target=client_loop, args=(server.url,)) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(results) > 20, what="traffic")
            _add_version(repo, "mlp", 3, seed=3)
            assert client.post("/v2/repository/models/mlp/load").json()["versions"] == ["1", "2", "3"]
            wait_for(lambda: any(v == "3" for _, v in results[-5:]), what="version 3 answering")
            assert client.post("/v2/repository/models/two/unload").status_code == 200
            assert client.post("/v2/repository/models/two/load").status_code == 200
            # replace version 3's file in place (atomically) and reload: a new session for "3"
            mlp_model(repo / "mlp" / "model.tmp", 6, 8, 3, seed=4)
            os.replace(repo / "mlp" / "model.tmp", repo / "mlp" / "3" / "model.onnx")
            n = len(results)
            assert client.post("/v2/repository/models/mlp/load").status_code == 200
            shutil.rmtree(repo / "mlp" / "3")
            assert client.post("/v2/repository/models/mlp/load").json()["versions"] == ["1", "2"]
            wait_for(lambda: len(results) > n + 20, what="more traffic")
        finally:
            stop.set()
            for t in threads:
                t.join(20)
        statuses = {s for s, _ in results}
        assert statuses == {200}, [r for r in results if r[0] != 200][:5]
        assert {v for _, v in results} >= {"2", "3"}
        assert _y(_infer(client, "mlp", x)).shape == (1, 3)


def test_unload_waits_for_requests_in_flight(repo):
    x = np.ones((1, 6), np.float32)
    with _serve_repo(repo) as server, httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as client:
        gate = Gate(server.service.repository.get("mlp").runner)
        try:
            with __import__("concurrent.futures").futures.ThreadPoolExecutor(2) as pool:
                pending = pool.submit(_infer, client, "mlp", x)
                gate.wait_entered()
                assert client.post("/v2/repository/models/mlp/unload").status_code == 200
                assert client.get("/v2/models/mlp/ready").status_code == 404  # no new requests
                assert _infer(client, "mlp", x).status_code == 404
                gate.open()
                resp = pending.result(20)
            assert resp.status_code == 200 and resp.json()["model_version"] == "2"
            index = {(e["name"], e.get("version")): e["state"] for e in client.post("/v2/repository/index").json()}
            assert index[("mlp", "2")] == "UNAVAILABLE" and index[("two", "1")] == "READY"
            ready = client.post("/v2/repository/index", json={"ready": True}).json()
            assert [e["name"] for e in ready] == ["two"]
        finally:
            gate.restore()


def test_polling_picks_up_new_versions_and_survives_a_bad_one(repo):
    x = np.ones((1, 6), np.float32)
    with _serve_repo(repo, repository_poll=0.1) as server, \
            httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as client:
        _add_version(repo, "mlp", 7, seed=7)
        wait_for(lambda: client.get("/v2/models/mlp").json()["versions"] == ["1", "2", "7"], what="the poll")
        np.testing.assert_allclose(_y(_infer(client, "mlp", x)),
                                   ort_run(str(repo / "mlp/7/model.onnx"), {"x": x})[0], rtol=1e-5)
        hidden = repo / "mlp" / ".tmp-8"
        hidden.mkdir()
        (hidden / "model.onnx").write_bytes(b"not a model")
        os.replace(hidden, repo / "mlp" / "8")
        time.sleep(0.5)  # a few polls: the broken version is refused, the others keep serving
        assert client.get("/v2/models/mlp").json()["versions"] == ["1", "2", "7"]
        assert _infer(client, "mlp", x).json()["model_version"] == "7"
        resp = client.post("/v2/repository/models/mlp/load")
        assert resp.status_code == 400 and "not a valid ONNX model" in resp.json()["error"]
        shutil.rmtree(repo / "two")
        wait_for(lambda: client.get("/v2/models/two").status_code == 404, what="the removed model to go")
        assert client.post("/v2/repository/models/nothing/load").status_code == 404
        assert client.post("/v2/repository/models/nothing/unload").status_code == 404


@pytest.mark.parametrize("config,needle", [
    ({"max_batch": 0}, "'max_batch' must be >= 1"),
    ({"max_batch": "8"}, "'max_batch' must be a int"),
    ({"batch": 8}, "unknown key 'batch'"),
    ({"inputs": ["x"]}, "declares ['x']"),
])
def test_bad_config_json_is_a_load_error(repo, config, needle):
    (repo / "two" / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadError, match=__import__("re").escape(needle)):
        _serve_repo(repo)


def test_empty_or_missing_repository(tmp_path):
    with pytest.raises(LoadError, match="holds no model"):
        _serve_repo(tmp_path)
    with pytest.raises(LoadError, match="is not a directory"):
        _serve_repo(tmp_path / "missing")
    (tmp_path / "m").mkdir()
    with pytest.raises(LoadError, match="no version to load"):
        _serve_repo(tmp_path)


def test_single_file_reloads_in_place(tmp_path):
    path = mlp_model(tmp_path / "net.onnx", 6, 8, 3, seed=1)
    x = np.ones((1, 6), np.float32)
    with InferenceServer(path, ServeConfig(port=0, log_level="warning")) as server, \
            httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as client:
        before = _y(_infer(client, "net", x))
        mlp_model(tmp_path / "net.tmp", 6, 8, 3, seed=5)
        os.replace(tmp_path / "net.tmp", path)
        assert client.post("/v2/repository/models/net/load").status_code == 200
        after = _y(_infer(client, "net", x))
        np.testing.assert_allclose(after, ort_run(path, {"x": x})[0], rtol=1e-5)
        assert not np.allclose(before, after)
        assert client.post("/v1/predict", json=x.tolist()).status_code == 200


def test_cli_serves_a_repository_and_refuses_bad_flags(repo):
    import signal
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "graphforge.serve", "--model-repository", str(repo),
                             "--port", str(port), "--log-level", "warning"], stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stderr.readline()
        assert "mlp/1" in banner and "mlp/2" in banner and "two/1" in banner, banner
        r = first_answer(f"http://127.0.0.1:{port}/v2/health/ready", proc)
        assert r.status_code == 200
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=HTTP_TIMEOUT) as client:
            assert _infer(client, "mlp", np.ones((2, 6), np.float32)).json()["model_version"] == "2"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stderr.close()
    for argv, needle in ((["--port", "0"], "either MODEL.onnx or --model-repository"),
                         (["--model-repository", str(repo), "--host", "0.0.0.0"], "--allow-remote")):
        done = subprocess.run([sys.executable, "-m", "graphforge.serve", *argv], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr
