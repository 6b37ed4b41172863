"""Dynamic batching: concurrent requests merged into one onnxruntime call and split back, bad
requests kept out of batches, batching off by flag or for fixed-batch models, queue-full 503."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from serve_helpers import HTTP_TIMEOUT, Gate, metric_samples, ort_run, running, sample, wait_for


def _post_all(url, bodies, *, barrier=True):
    """POST every body concurrently (one thread and client each); [(status, json)] in order."""
    start = threading.Barrier(len(bodies)) if barrier else None

    def post(body):
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as c:
            if start:
                start.wait(10)
            r = c.post("/v1/predict", json=body)
            return r.status_code, r.json()

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def _batches(client):
    s = metric_samples(client)
    return (sample(s, "graphforge_serve_batch_requests_count"), sample(s, "graphforge_serve_batch_requests_sum"),
            sample(s, "graphforge_serve_batch_size_sum"))


def test_paused_worker_merges_queued_requests(models):
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((k, 6)).astype(np.float32) for k in (1, 1, 2, 3, 1, 2, 1, 1)]
    want = ort_run(models["small"], {"x": np.concatenate(xs)})[0]
    with running(models["small"], max_batch=64, max_wait_ms=2) as (server, client):
        gate = Gate(server.service.runner)
        with ThreadPoolExecutor(8) as pool:
            first = pool.submit(client.post, "/v1/predict", json={"inputs": {"x": xs[0].tolist()}})
            gate.wait_entered()  # request 0 runs alone and is held there
            rest = [pool.submit(client.post, "/v1/predict", json={"inputs": {"x": x.tolist()}}) for x in xs[1:]]
            wait_for(lambda: server.service.batcher.queue_depth == 7, what="7 queued requests")
            queued = metric_samples(client)
            assert sample(queued, "graphforge_serve_queue_depth") == 7
            assert sample(queued, "graphforge_serve_inflight_requests") == 8
            gate.open()
            resps = [first.result(20)] + [f.result(20) for f in rest]
        gate.restore()
        assert gate.calls == 2  # one call for request 0, one for the 7 merged
        off = 0
        for x, r in zip(xs, resps):
            assert r.status_code == 200, r.text
            got = np.asarray(r.json()["outputs"]["y"], np.float32)
            np.testing.assert_allclose(got, want[off:off + len(x)], rtol=1e-5, atol=1e-6)
            off += len(x)
        count, reqs, rows = _batches(client)
        assert (count, reqs, rows) == (2, 8, 12)
        s = metric_samples(client)
        assert sample(s, "graphforge_serve_batch_requests_bucket", le="4.0") == 1  # the 7-request batch is > 4
        assert sample(s, "graphforge_serve_queue_depth") == 0


def test_concurrent_requests_are_batched(models):
    rng = np.random.default_rng(4)
    xs = rng.standard_normal((16, 1, 784)).astype(np.float32)
    want = ort_run(models["mlp"], {"x": xs[:, 0]})[0]
    with running(models["mlp"], max_batch=64, max_wait_ms=150) as (server, client):
        results = _post_all(server.url, [{"inputs": {"x": x.tolist()}} for x in xs])
        for k, (status, body) in enumerate(results):
            assert status == 200, body
            np.testing.assert_allclose(np.asarray(body["outputs"]["y"])[0], want[k], rtol=1e-5, atol=1e-5)
        count, reqs, rows = _batches(client)
        assert reqs == 16 and rows == 16
        assert count < 16, "no two concurrent requests were merged"
        s = metric_samples(client)
        assert sample(s, "graphforge_serve_batch_size_bucket", le="1.0") < count  # a batch of > 1 rows


def test_bad_request_never_fails_its_batch(models):
    with running(models["gather"], max_batch=64, max_wait_ms=2) as (server, client):
        gate = Gate(server.service.runner)
        with ThreadPoolExecutor(8) as pool:
            first = pool.submit(client.post, "/v1/predict", json=[[0, 1]])
            gate.wait_entered()
            good = [pool.submit(client.post, "/v1/predict", json=[[k % 5, 4 - k % 5]]) for k in range(4)]
            wait_for(lambda: server.service.batcher.queue_depth == 4, what="4 queued")
            # invalid requests are answered at once, while the worker is still paused
            assert client.post("/v1/predict", json=[[0, 1, 2]]).status_code == 400
            assert client.post("/v1/predict", json=[["a", 1]]).status_code == 400
            # a request that passes validation but makes onnxruntime fail joins the batch
            bad = pool.submit(client.post, "/v1/predict", json=[[0, 77]])
            wait_for(lambda: server.service.batcher.queue_depth == 5, what="5 queued")
            gate.open()
            assert first.result(20).status_code == 200
            table = np.arange(15, dtype=np.float32).reshape(5, 3)
            for k, f in enumerate(good):
                r = f.result(20)
                assert r.status_code == 200, r.text
                np.testing.assert_array_equal(r.json()["outputs"]["rows"], table[[[k % 5, 4 - k % 5]]])
            r = bad.result(20)
            assert r.status_code == 400 and "inference failed" in r.json()["error"]["message"]
        gate.restore()
        # 1 (first) + 1 failed merged batch of 5 + 5 re-runs one by one
        assert gate.calls == 7


def test_batching_off_runs_requests_alone(models):
    for options in ({"max_batch": 1}, {"max_wait_ms": 0}):
        with running(models["small"], **options) as (server, client):
            assert client.get("/v1/model").json()["serving"]["batching"] is False
            gate = Gate(server.service.runner)
            with ThreadPoolExecutor(6) as pool:
                futs = [pool.submit(client.post, "/v1/predict", json=[[0.1 * k] * 6]) for k in range(6)]
                gate.wait_entered()
                wait_for(lambda: server.service.batcher.queue_depth == 5, what="5 queued")
                gate.open()
                assert all(f.result(20).status_code == 200 for f in futs)
            gate.restore()
            assert _batches(client)[:2] == (6, 6), options


def test_fixed_batch_model_is_served_unbatched(models):
    x = np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32)
    (want,) = ort_run(models["fixed"], {"x": x})
    with running(models["fixed"], max_batch=64, max_wait_ms=100) as (server, client):
        doc = client.get("/v1/model").json()
        assert doc["batchable"] is False and doc["serving"]["batching"] is False
        assert doc["inputs"][0]["shape"] == [4, 3]
        results = _post_all(server.url, [{"inputs": {"x": x.tolist()}}] * 4)
        for status, body in results:
            assert status == 200
            np.testing.assert_allclose(body["outputs"]["y"], want, rtol=1e-5, atol=1e-6)
        count, reqs, _ = _batches(client)
        assert count == reqs == 4
        r = client.post("/v1/predict", json={"inputs": {"x": x[:2].tolist()}})
        assert r.status_code == 400
        assert r.json()["error"]["message"] == "input 'x' has shape [2, 3], the model expects [4, 3]"


def test_full_queue_answers_503(models):
    with running(models["small"], queue_size=2, max_batch=64, max_wait_ms=2) as (server, client):
        gate = Gate(server.service.runner)
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(client.post, "/v1/predict", json=[[1.0] * 6])
            gate.wait_entered()
            queued = [pool.submit(client.post, "/v1/predict", json=[[2.0] * 6]) for _ in range(2)]
            wait_for(lambda: server.service.batcher.queue_depth == 2, what="a full queue")
            r = client.post("/v1/predict", json=[[3.0] * 6])
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["type"] == "QueueFullError"
            assert "queue is full" in r.json()["error"]["message"]
            gate.open()
            assert first.result(20).status_code == 200
            assert [f.result(20).status_code for f in queued] == [200, 200]
        gate.restore()
        s = metric_samples(client)
        assert sample(s, "graphforge_serve_requests_total", endpoint="/v1/predict", method="POST", status=503) == 1
        assert sample(s, "graphforge_serve_rejected_requests_total", reason="queue_full") == 1
        assert client.post("/v1/predict", json=[[3.0] * 6]).status_code == 200  # room again


def test_closed_loop_clients_are_gathered_into_full_batches(models):
    """N clients that each send the next request when the last is answered arrive a little apart;
    the batcher waits (within the window) for the ones it has seen lately instead of running
    whatever arrived in the same event-loop tick."""
    import asyncio

    from bench_helpers import closed_loop

    clients, per_client = 8, 12
    with running(models["small"], max_batch=64, max_wait_ms=200) as (server, client):
        statuses = asyncio.run(closed_loop(server.port, clients, per_client, b"[[0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]"))
        assert statuses == {200: clients * per_client}
        count, reqs, rows = _batches(client)
    assert reqs == rows == clients * per_client
    # a lone first request, then batches of all 8 (a client late by > 200 ms splits one in two)
    assert reqs / count >= 6, f"{count} onnxruntime calls for {reqs} requests"


def test_stalled_body_counts_against_the_queue_then_times_out(models):
    """A client that stops sending its body holds a place among the admitted requests (bodies in
    memory are bounded), and loses it with a 408 after --body-timeout."""
    import socket

    with running(models["small"], queue_size=1, body_timeout=0.5) as (server, client):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 200\r\n\r\n[[1.0, ")
            wait_for(lambda: server.service.batcher.arriving == 1, what="the stalled request to be admitted")
            r = client.post("/v1/predict", json=[[1.0] * 6])
            assert r.status_code == 503 and "--queue-size" in r.json()["error"]["message"]
            reply = b""
            while b"--body-timeout" not in reply:  # the head and the body may come in separate segments
                chunk = raw.recv(4096)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 408"), reply[:80]
        assert b"--body-timeout" in reply
        assert server.service.batcher.arriving == 0
        assert client.post("/v1/predict", json=[[1.0] * 6]).status_code == 200
        s = metric_samples(client)
        assert sample(s, "graphforge_serve_requests_total", endpoint="/v1/predict", method="POST", status=408) == 1


def test_two_workers_run_batches_side_by_side(models):
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal((k % 3 + 1, 6)).astype(np.float32) for k in range(12)]
    want = ort_run(models["small"], {"x": np.concatenate(xs)})[0]
    with running(models["small"], workers=2, max_batch=4, max_wait_ms=20) as (server, client):
        gate = Gate(server.service.runner)
        with ThreadPoolExecutor(12) as pool:
            futs = [pool.submit(client.post, "/v1/predict", json={"inputs": {"x": x.tolist()}}) for x in xs]
            gate.wait_entered()
            gate.wait_entered()  # both workers are inside onnxruntime at once
            gate.open()
            resps = [f.result(20) for f in futs]
        gate.restore()
        off = 0
        for x, r in zip(xs, resps):
            assert r.status_code == 200, r.text
            np.testing.assert_allclose(r.json()["outputs"]["y"], want[off:off + len(x)], rtol=1e-5, atol=1e-6)
            off += len(x)
        count, reqs, rows = _batches(client)
    assert reqs == 12 and rows == sum(len(x) for x in xs) == 24
    assert count >= 6  # no call above --max-batch 4 rows
