"""POST /v1/predict (JSON, .npy, .npz), GET /v1/model, /healthz and /metrics against onnxruntime."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from serve_helpers import metric_samples, ort_run, running, sample

import graphforge


@pytest.fixture(scope="module")
def mlp_server(models):
    with running(models["mlp"]) as (server, client):
        yield server, client


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_json_predict_matches_onnxruntime(models, mlp_server):
    _, client = mlp_server
    x = np.random.default_rng(0).standard_normal((3, 784))  # float64 in JSON, cast to float32
    resp = client.post("/v1/predict", json={"inputs": {"x": x.tolist()}})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    got = np.asarray(resp.json()["outputs"]["y"], dtype=np.float32)
    (want,) = ort_run(models["mlp"], {"x": x.astype(np.float32)})
    assert got.shape == (3, 10)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # a bare list is the only input
    resp = client.post("/v1/predict", json=x[:1].tolist())
    assert resp.status_code == 200
    np.testing.assert_allclose(np.asarray(resp.json()["outputs"]["y"]), want[:1], rtol=1e-5, atol=1e-6)


def test_npy_predict_returns_npy(models, mlp_server):
    _, client = mlp_server
    x = np.random.default_rng(1).standard_normal((5, 784)).astype(np.float32)
    resp = client.post("/v1/predict", content=_npy(x), headers={"content-type": "application/x-npy"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/x-npy"
    got = np.load(io.BytesIO(resp.content), allow_pickle=False)
    (want,) = ort_run(models["mlp"], {"x": x})
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # Accept: application/json turns a binary request's answer into JSON
    resp = client.post("/v1/predict", content=_npy(x), headers={"content-type": "application/x-npy",
                                                                "accept": "application/json"})
    np.testing.assert_allclose(np.asarray(resp.json()["outputs"]["y"]), want, rtol=1e-6, atol=1e-6)


def test_two_inputs_json_and_npz(models):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 4, 3)).astype(np.float32)
    with running(models["two"]) as (_, client):
        resp = client.post("/v1/predict", json={"inputs": {"a": a.tolist(), "b": b.tolist()}})
        assert resp.status_code == 200, resp.text
        out = resp.json()["outputs"]
        np.testing.assert_allclose(out["sum"], a + b, rtol=1e-6)
        np.testing.assert_allclose(out["prod"], a * b, rtol=1e-6)

        resp = client.post("/v1/predict", content=_npz(a=a, b=b), headers={"content-type": "application/x-npz"})
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/x-npz"
        with np.load(io.BytesIO(resp.content), allow_pickle=False) as z:
            np.testing.assert_array_equal(z["sum"], a + b)
            np.testing.assert_array_equal(z["prod"], a * b)

        for body, needle in [({"inputs": {"a": a.tolist()}}, "missing input 'b'"),
                             ({"inputs": {"a": a.tolist(), "b": b.tolist(), "c": [1]}}, "unknown input 'c'"),
                             ({"inputs": a.tolist()}, "the model has 2 inputs"),
                             ({"inputs": {"a": a.tolist(), "b": b[:2].tolist()}}, "dimension 'batch' is 4")]:
            resp = client.post("/v1/predict", json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert needle in resp.json()["error"]["message"]


def test_model_endpoint(models, mlp_server):
    _, client = mlp_server
    doc = client.get("/v1/model").json()
    assert doc["inputs"] == [{"name": "x", "shape": ["batch", 784], "dtype": "float32"}]
    assert doc["outputs"] == [{"name": "y", "shape": ["batch", 10], "dtype": "float32"}]
    assert doc["opset"] == 17
    assert doc["producer"] == {"name": "graphforge-tests", "version": "1"}
    assert doc["graphforge_version"] == graphforge.__version__
    import hashlib

    with open(models["mlp"], "rb") as f:
        assert doc["sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert doc["batchable"] is True and doc["serving"]["batching"] is True
    assert "CPUExecutionProvider" in doc["providers"]
    assert client.get("/healthz").json()["status"] == "ok"


BAD_JSON = [
    ({"inputs": {"x": [[1.0] * 5] * 3}}, "input 'x' has shape [3, 5], the model expects [batch, 784]"),
    ({"inputs": {"x": [1.0] * 784}}, "input 'x' has shape [784], the model expects [batch, 784]"),
    ({"inputs": {"x": [["a"] * 784]}}, "non-numeric"),
    ({"inputs": {"x": [[None] * 784]}}, "non-numeric"),
    ({"inputs": {"x": [[1.0] * 784, [1.0] * 783]}}, "ragged"),
    ({"inputs": {"x": [[True] * 784]}}, "booleans"),
    ({"inputs": {"x": [[{"v": 1}] * 784]}}, "non-numeric"),
    ({"inputs": {"y": [[1.0] * 784]}}, "unknown input 'y'"),
    ({"inputs": {}}, "empty"),
    ({"x": [[1.0] * 784]}, '"inputs"'),
    ({"inputs": "nope"}, '"inputs" must be'),
    ("just a string", "JSON body must be"),
]


@pytest.mark.parametrize("body,needle", BAD_JSON, ids=[f"bad{i}" for i in range(len(BAD_JSON))])
def test_bad_json_requests_are_400(mlp_server, body, needle):
    _, client = mlp_server
    resp = client.post("/v1/predict", json=body)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert needle in err["message"], err
    assert err["type"] == "BadRequestError"


def test_bad_bodies(mlp_server):
    _, client = mlp_server
    x64 = np.zeros((2, 784))
    pickled = io.BytesIO()
    np.save(pickled, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    header_lie = _npy(np.zeros((1, 784), np.float32)).replace(b"(1, 784)", b"(2, 784)", 1)
    cases = [
        (b"{not json", "application/json", 400, "malformed JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, ""),
        (b"", "application/json", 400, "empty request body"),
        (b"\xff\xfe\x00", "application/json", 400, "malformed JSON"),
        (b"[[" + b"1" * 5000 + b"]]", "application/json", 400, "malformed JSON"),  # over int's digit limit
        (b"x,y\n1,2", "text/csv", 415, "unsupported Content-Type"),
        (_npy(x64), "application/x-npy", 400, "dtype float64, the model expects float32"),
        (pickled.getvalue(), "application/x-npy", 400, "only plain numeric and bool arrays"),
        (header_lie, "application/x-npy", 400, "carries"),
        (_npy(np.zeros((1, 784), np.float32))[:-10], "application/x-npy", 400, "carries"),
        (b"PK\x03\x04garbage", "application/x-npz", 400, "not a valid .npz"),
        (_npz(x=np.zeros((1, 784), np.float32), z=np.zeros(1)), "application/x-npz", 400, "unknown input 'z'"),
    ]
    for body, ctype, status, needle in cases:
        resp = client.post("/v1/predict", content=body, headers={"content-type": ctype})
        assert resp.status_code == status, (body[:40], resp.text)
        assert needle in resp.json()["error"]["message"], (needle, resp.text)
    # a forged .npy header declaring a huge shape is refused without allocating it
    huge = _npy(np.zeros((1, 784), np.float32)).replace(b"(1, 784)", b"(9**9**9", 1)
    resp = client.post("/v1/predict", content=huge, headers={"content-type": "application/x-npy"})
    assert resp.status_code == 400
    big = np.lib.format.header_data_from_array_1_0(np.zeros((1, 784), np.float32))
    big["shape"] = (10**9, 784)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, big)
    resp = client.post("/v1/predict", content=buf.getvalue() + b"\0" * 64,
                       headers={"content-type": "application/x-npy"})
    assert resp.status_code == 413, resp.text
    assert "declares shape [1000000000, 784]" in resp.json()["error"]["message"]
    # wrong method, unknown path: JSON errors too
    assert client.get("/v1/predict").status_code == 405
    assert client.get("/nope").json()["error"]["message"] == "Not Found"
    assert client.get("/healthz").status_code == 200  # still alive


def test_oversized_bodies_are_413(models):
    with running(models["small"], max_body_bytes=4096) as (_, client):
        resp = client.post("/v1/predict", content=b"[" + b"1.0," * 2000 + b"1.0]",
                           headers={"content-type": "application/json"})
        assert resp.status_code == 413
        assert "limit is 4096" in resp.json()["error"]["message"]

        def chunks():  # no Content-Length: the limit applies while streaming
            for _ in range(10):
                yield b"[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]" * 20

        resp = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert resp.status_code == 413
        # an .npz bomb: 2.4 MB of zeros compressed into a few kB
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            with zf.open("x.npy", "w") as member:
                np.lib.format.write_array(member, np.zeros((1, 600_000), np.float32))
        assert len(buf.getvalue()) < 4096
        resp = client.post("/v1/predict", content=buf.getvalue(), headers={"content-type": "application/x-npz"})
        assert resp.status_code == 413, resp.text
        ok = client.post("/v1/predict", json=[[1.0] * 6])
        assert ok.status_code == 200


def test_int_inputs_and_inference_errors(models):
    with running(models["gather"]) as (_, client):
        resp = client.post("/v1/predict", json=[[0, 4], [2, 1]])
        assert resp.status_code == 200, resp.text
        table = np.arange(15, dtype=np.float32).reshape(5, 3)
        np.testing.assert_array_equal(resp.json()["outputs"]["rows"], table[[[0, 4], [2, 1]]])
        assert client.post("/v1/predict", json=[[0.0, 4.0]]).status_code == 200  # integral floats are fine
        for body, needle in [([[0.5, 1]], "non-integer"), ([[2**70, 1]], "non-numeric"),
                             ([[True, False]], "booleans")]:
            resp = client.post("/v1/predict", json=body)
            assert resp.status_code == 400 and needle in resp.json()["error"]["message"], resp.text
        resp = client.post("/v1/predict", content=_npy(np.array([[0, 1]], np.int32)),
                           headers={"content-type": "application/x-npy"})
        assert resp.status_code == 200  # int32 -> int64 is a safe cast
        resp = client.post("/v1/predict", json=[[0, 99]])  # onnxruntime refuses the index
        assert resp.status_code == 400
        assert "inference failed" in resp.json()["error"]["message"]


def test_metrics_counters_move(mlp_server):
    _, client = mlp_server
    before = metric_samples(client)
    x = [[0.5] * 784]
    for _ in range(3):
        assert client.post("/v1/predict", json=x).status_code == 200
    assert client.post("/v1/predict", json=[[0.5] * 3]).status_code == 400
    after = metric_samples(client)
    key = "graphforge_serve_requests_total"
    assert sample(after, key, endpoint="/v1/predict", method="POST", status=200) - \
        sample(before, key, endpoint="/v1/predict", method="POST", status=200) == 3
    assert sample(after, key, endpoint="/v1/predict", method="POST", status=400) - \
        sample(before, key, endpoint="/v1/predict", method="POST", status=400) == 1
    lat = "graphforge_serve_request_duration_seconds_count"
    assert sample(after, lat, endpoint="/v1/predict") - sample(before, lat, endpoint="/v1/predict") == 4
    inf = "graphforge_serve_inference_duration_seconds_count"
    assert sample(after, inf) - sample(before, inf) == 3
    assert sample(after, "graphforge_serve_batch_size_count") - sample(before, "graphforge_serve_batch_size_count") == 3
    assert ("graphforge_serve_queue_depth", frozenset()) in after
    assert sample(after, "graphforge_serve_queue_depth") == 0
    assert sample(after, "graphforge_serve_inflight_requests") == 0


def test_mutated_bodies_never_cause_a_server_error(models, mlp_server):
    """Random byte flips, truncations and splices of valid JSON/.npy/.npz bodies: every answer is
    200 or a 4xx naming the problem, never a 5xx, and the server keeps serving."""
    _, client = mlp_server
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 784)).astype(np.float32)
    seeds = [(b'{"inputs": {"x": [[' + b", ".join(b"%.3f" % v for v in x[0, :784]) + b"]]}}", "application/json"),
             (_npy(x), "application/x-npy"), (_npz(x=x), "application/x-npz"), (_npy(x), "application/octet-stream")]
    statuses = set()
    for i in range(160):
        body, ctype = seeds[i % len(seeds)]
        data = bytearray(body)
        kind = rng.integers(4)
        if kind == 0:  # flip bytes, mostly in the header where parsing happens
            for pos in rng.integers(0, min(len(data), 160), size=rng.integers(1, 6)):
                data[pos] = int(rng.integers(256))
        elif kind == 1:
            data = data[:int(rng.integers(0, len(data)))]
        elif kind == 2:
            pos = int(rng.integers(0, min(len(data), 160)))
            data[pos:pos] = bytes(rng.integers(0, 256, size=int(rng.integers(1, 40)), dtype=np.uint8))
        else:
            other = seeds[int(rng.integers(len(seeds)))][0]
            cut = int(rng.integers(0, min(len(data), len(other))))
            data = data[:cut] + other[cut:]
        resp = client.post("/v1/predict", content=bytes(data), headers={"content-type": ctype})
        statuses.add(resp.status_code)
        assert resp.status_code in (200, 400, 413, 415), (i, kind, resp.status_code, resp.text[:200])
        if resp.status_code != 200:
            assert resp.json()["error"]["message"]
    assert 400 in statuses
    assert client.get("/healthz").status_code == 200
