"""The Open Inference Protocol (KServe v2 / Triton HTTP) over raw HTTP: every endpoint, JSON and binary
tensors, requested outputs, and the ``{"error": ...}`` bodies with their status codes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from serve_helpers import ort_run, running


def _binary_request(tensors: dict[str, np.ndarray], outputs=None, **params):
    """(body, headers) of an infer request with every input as binary data, like tritonclient sends."""
    head = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": {"float32": "FP32", "int64": "INT64"}[a.dtype.name],
                        "parameters": {"binary_data_size": a.nbytes}} for n, a in tensors.items()]}
    if outputs is not None:
        head["outputs"] = outputs
    if params:
        head["parameters"] = params
    text = json.dumps(head).encode()
    body = text + b"".join(np.ascontiguousarray(a).tobytes() for a in tensors.values())
    return body, {"Inference-Header-Content-Length": str(len(text)), "Content-Type": "application/octet-stream"}


def _split_binary(resp) -> tuple[dict, bytes]:
    n = int(resp.headers["inference-header-content-length"])
    return json.loads(resp.content[:n]), resp.content[n:]


def test_health_server_and_model_metadata(models):
    with running(models["two"]) as (server, client):
        assert client.get("/v2/health/live").status_code == 200
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        meta = client.get("/v2").json()
        assert meta["name"] == "graphforge" and {"binary_tensor_data", "model_repository"} <= set(meta["extensions"])
        model = client.get("/v2/models/two").json()
        assert model["name"] == "two" and model["versions"] == ["1"] and model["platform"] == "onnxruntime_onnx"
        assert model["inputs"] == [{"name": "a", "datatype": "FP32", "shape": [-1, 3]},
                                   {"name": "b", "datatype": "FP32", "shape": [-1, 3]}]
        assert [o["name"] for o in model["outputs"]] == ["sum", "prod"]
        assert client.get("/v2/models/two/versions/1").json() == model
        assert client.get("/v2/models/two/ready").status_code == 200
        assert client.get("/v2/models/two/versions/1/ready").json()["ready"] is True
    with running(models["gather"]) as (server, client):
        meta = client.get("/v2/models/gather").json()
        assert meta["inputs"] == [{"name": "idx", "datatype": "INT64", "shape": [-1, 2]}]
        assert meta["outputs"] == [{"name": "rows", "datatype": "FP32", "shape": [-1, 2, 3]}]


def test_json_infer_matches_onnxruntime(models):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 0.5, np.float32)
    want = ort_run(models["two"], {"a": a, "b": b})
    with running(models["two"]) as (server, client):
        body = {"id": "req-7", "inputs": [
            {"name": "a", "shape": [2, 3], "datatype": "FP32", "data": a.ravel().tolist()},
            {"name": "b", "shape": [2, 3], "datatype": "FP32", "data": b.tolist()}]}  # nested data is accepted too
        resp = client.post("/v2/models/two/infer", json=body)
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        assert doc["model_name"] == "two" and doc["model_version"] == "1" and doc["id"] == "req-7"
        outs = {o["name"]: o for o in doc["outputs"]}
        assert outs["sum"]["datatype"] == "FP32" and outs["sum"]["shape"] == [2, 3]
        np.testing.assert_allclose(np.reshape(outs["sum"]["data"], (2, 3)), want[0], rtol=1e-6)
        np.testing.assert_allclose(np.reshape(outs["prod"]["data"], (2, 3)), want[1], rtol=1e-6)
        # only the outputs asked for, in the order asked
        body["outputs"] = [{"name": "prod"}]
        doc = client.post("/v2/models/two/versions/1/infer", json=body).json()
        assert [o["name"] for o in doc["outputs"]] == ["prod"]


def test_binary_tensors_in_and_out(models):
    x = np.random.default_rng(1).standard_normal((3, 784)).astype(np.float32)
    want = ort_run(models["mlp"], {"x": x})[0]
    with running(models["mlp"]) as (server, client):
        body, headers = _binary_request({"x": x}, binary_data_output=True)
        resp = client.post("/v2/models/mlp/infer", content=body, headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/octet-stream"
        head, blob = _split_binary(resp)
        (out,) = head["outputs"]
        assert out["shape"] == [3, 10] and out["parameters"]["binary_data_size"] == len(blob) == 3 * 10 * 4
        np.testing.assert_allclose(np.frombuffer(blob, "<f4").reshape(3, 10), want, rtol=1e-5, atol=1e-6)
        # binary in, JSON out when the output says binary_data: false
        body, headers = _binary_request({"x": x}, outputs=[{"name": "y", "parameters": {"binary_data": False}}])
        resp = client.post("/v2/models/mlp/infer", content=body, headers=headers)
        assert resp.headers["content-type"] == "application/json"
        np.testing.assert_allclose(np.reshape(resp.json()["outputs"][0]["data"], (3, 10)), want, rtol=1e-5, atol=1e-6)


def test_int64_inputs_and_inference_errors(models):
    idx = np.array([[0, 4], [2, 1]], np.int64)
    with running(models["gather"]) as (server, client):
        resp = client.post("/v2/models/gather/infer", json={"inputs": [
            {"name": "idx", "shape": [2, 2], "datatype": "INT64", "data": idx.ravel().tolist()}]})
        assert resp.status_code == 200, resp.text
        np.testing.assert_array_equal(np.reshape(resp.json()["outputs"][0]["data"], (2, 2, 3)),
                                      ort_run(models["gather"], {"idx": idx})[0])
        bad = client.post("/v2/models/gather/infer", json={"inputs": [
            {"name": "idx", "shape": [1, 2], "datatype": "INT64", "data": [0, 9]}]})
        assert bad.status_code in (400, 500) and "inference failed" in bad.json()["error"]


@pytest.mark.parametrize("body,status,needle", [
    (b"{not json", 400, "malformed JSON"),
    (b"[]", 400, "JSON object"),
    (b'{"inputs": []}', 400, "non-empty list"),
    (b'{"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32"}]}', 400, "neither 'data'"),
    (b'{"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP64", "data": [1,2,3,4,5,6]}]}', 400,
     "expects FP32"),
    (b'{"inputs": [{"name": "x", "shape": [1, 6], "datatype": "BYTES", "data": ["a"]}]}', 400, "not supported"),
    (b'{"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [1,2,3]}]}', 400, "has 3 values"),
    (b'{"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP32", "data": [1,2,3,4,5]}]}', 400, "shape"),
    (b'{"inputs": [{"name": "z", "shape": [1, 6], "datatype": "FP32", "data": [1,2,3,4,5,6]}]}', 400,
     "unknown input 'z'"),
    (b'{"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [1,2,3,4,5,6]}],'
     b' "outputs": [{"name": "nope"}]}', 400, "unknown output 'nope'"),
    (b'{"inputs": [{"name": "x", "shape": [-1, 6], "datatype": "FP32", "data": []}]}', 400, "non-negative"),
    (b'{"inputs": [{"name": "x", "shape": [4000000, 6], "datatype": "FP32", "data": []}]}', 413, "--max-body-bytes"),
])
def test_infer_errors_are_json(models, body, status, needle):
    with running(models["small"], max_body_bytes=1 << 20) as (server, client):
        resp = client.post("/v2/models/small/infer", content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == status, resp.text
        assert needle in resp.json()["error"]


def test_binary_framing_errors(models):
    x = np.ones((1, 6), np.float32)
    with running(models["small"]) as (server, client):
        body, headers = _binary_request({"x": x})
        short = client.post("/v2/models/small/infer", content=body[:-4], headers=headers)
        assert short.status_code == 400 and "binary" in short.json()["error"]
        extra = client.post("/v2/models/small/infer", content=body + b"\0" * 8, headers=headers)
        assert extra.status_code == 400 and "no input claims" in extra.json()["error"]
        no_len = client.post("/v2/models/small/infer", content=body, headers={"Content-Type": "application/octet-stream"})
        assert no_len.status_code == 400 and "Inference-Header-Content-Length" in no_len.json()["error"]
        bad_len = client.post("/v2/models/small/infer", content=body,
                              headers={"Inference-Header-Content-Length": str(len(body) + 5)})
        assert bad_len.status_code == 400 and "does not fit" in bad_len.json()["error"]


def test_unknown_models_routes_and_methods(models):
    with running(models["small"]) as (server, client):
        for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/small/versions/9"):
            resp = client.get(path)
            assert resp.status_code == 404 and "error" in resp.json(), path
        assert "loaded models: ['small']" in client.get("/v2/models/nope").json()["error"]
        resp = client.post("/v2/models/nope/infer", json={"inputs": []})
        assert resp.status_code == 404 and isinstance(resp.json()["error"], str)
        resp = client.get("/v2/models/small/infer")
        assert resp.status_code == 405 and isinstance(resp.json()["error"], str)
        resp = client.get("/v2/no/such/path")
        assert resp.status_code == 404 and isinstance(resp.json()["error"], str)
        # /v1 keeps its own error shape
        assert client.get("/v1/nothing").json()["error"]["type"] == "HTTPError"


def test_v1_and_v2_share_the_batcher_and_the_per_model_metrics(models):
    from serve_helpers import metric_samples, sample

    with running(models["small"]) as (server, client):
        x = [[0.5] * 6]
        assert client.post("/v1/predict", json=x).status_code == 200
        assert client.post("/v2/models/small/infer", json={"inputs": [
            {"name": "x", "shape": [1, 6], "datatype": "FP32", "data": x[0]}]}).status_code == 200
        assert client.post("/v2/models/small/infer", json={"inputs": []}).status_code == 400
        s = metric_samples(client)
        assert sample(s, "graphforge_inference_requests_total", model="small", version="1", status=200) == 2
        assert sample(s, "graphforge_inference_requests_total", model="small", version="1", status=400) == 1
        assert sample(s, "graphforge_inference_executions_total", model="small", version="1") == 2
        assert sample(s, "graphforge_inference_batch_size_count", model="small", version="1") == 2
        assert sample(s, "graphforge_inference_queue_duration_seconds_count", model="small", version="1") == 2
        assert sample(s, "graphforge_inference_request_duration_seconds_count", model="small", version="1") == 2
        assert sample(s, "process_resident_memory_bytes") > 0 and sample(s, "process_open_fds") > 0
        assert sample(s, "graphforge_serve_requests_total", endpoint="/v2/models/{m}/infer", method="POST",
                      status=200) == 1
