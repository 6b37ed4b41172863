"""Helpers for the inference-server tests: ONNX models built with ``onnx.helper`` (independent of
graphforge's exporter), servers on a free loopback port stopped after each test, a gate to pause
inference, and a Prometheus text parser."""
from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
pytest.importorskip("prometheus_client")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from graphforge.serve import InferenceServer, ServeConfig  # noqa: E402

HTTP_TIMEOUT = 15.0


def _save(path, nodes, inputs, outputs, inits=(), name="model"):
    graph = helper.make_graph(nodes, name, inputs, outputs,
                              [numpy_helper.from_array(a, n) for n, a in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="graphforge-tests", producer_version="1")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return str(path)


def mlp_model(path, d_in=784, d_hidden=128, d_out=10, batch="batch", seed=0):
    """MatMul+Add+Relu+MatMul+Add with a symbolic (or fixed) batch dim."""
    rng = np.random.default_rng(seed)
    inits = [("w1", (rng.standard_normal((d_in, d_hidden)) * 0.05).astype(np.float32)),
             ("b1", (rng.standard_normal(d_hidden) * 0.1).astype(np.float32)),
             ("w2", (rng.standard_normal((d_hidden, d_out)) * 0.1).astype(np.float32)),
             ("b2", (rng.standard_normal(d_out) * 0.1).astype(np.float32))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
             helper.make_node("Add", ["h3", "b2"], ["y"])]
    return _save(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, d_in])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, d_out])], inits, "mlp")


def two_input_model(path):
    """sum = a + b, prod = a * b on [batch, 3] floats: two inputs, two outputs."""
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["a", "b"], ["prod"])]
    vi = helper.make_tensor_value_info
    return _save(path, nodes, [vi("a", TensorProto.FLOAT, ["batch", 3]), vi("b", TensorProto.FLOAT, ["batch", 3])],
                 [vi("sum", TensorProto.FLOAT, ["batch", 3]), vi("prod", TensorProto.FLOAT, ["batch", 3])],
                 name="two_inputs")


def gather_model(path):
    """rows = table[idx] with int64 idx [batch, 2] into a [5, 3] table (bad indices fail in ORT)."""
    table = np.arange(15, dtype=np.float32).reshape(5, 3)
    vi = helper.make_tensor_value_info
    return _save(path, [helper.make_node("Gather", ["table", "idx"], ["rows"], axis=0)],
                 [vi("idx", TensorProto.INT64, ["batch", 2])], [vi("rows", TensorProto.FLOAT, ["batch", 2, 3])],
                 [("table", table)], "gather")


def ort_run(path, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def build_models(d):
    return {"mlp": mlp_model(d / "mlp.onnx"), "fixed": mlp_model(d / "fixed.onnx", 3, 4, 2, batch=4),
            "small": mlp_model(d / "small.onnx", 6, 8, 3), "two": two_input_model(d / "two.onnx"),
            "gather": gather_model(d / "gather.onnx")}


@contextlib.contextmanager
def running(model, **options):
    """An :class:`InferenceServer` on 127.0.0.1:<free port> with an httpx client; always stopped."""
    options.setdefault("log_level", "warning")
    server = InferenceServer(model, ServeConfig(host="127.0.0.1", port=0, **options))
    server.start(timeout=20)
    try:
        with httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as client:
            yield server, client
    finally:
        assert server.stop(timeout=20), "server did not shut down"


class Gate:
    """Replace ``runner.run`` with one that blocks until :meth:`open` (a paused inference worker)."""

    def __init__(self, runner):
        self.runner = runner
        self._real = runner.run
        self._open = threading.Event()
        self.entered = threading.Semaphore(0)
        self.calls = 0
        runner.run = self._run

    def _run(self, feeds):
        self.calls += 1
        self.entered.release()
        assert self._open.wait(20), "gate never opened"
        return self._real(feeds)

    def wait_entered(self, timeout=10.0):
        assert self.entered.acquire(timeout=timeout), "inference never started"

    def open(self):
        self._open.set()

    def restore(self):
        self._open.set()
        self.runner.run = self._real


def first_answer(url: str, proc, timeout: float = 20.0):
    """GET ``url`` until a server process ``proc`` started on loopback answers; its response.
    Fails when ``proc`` exits first or nothing answers within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "server never came up"
            time.sleep(0.05)


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def metric_samples(client) -> dict:
    """{(sample name, frozenset(labels)): value} from ``GET /metrics`` (parsed by prometheus_client)."""
    from prometheus_client.parser import text_string_to_metric_families

    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(samples, name, **labels) -> float:
    return samples.get((name, frozenset((k, str(v)) for k, v in labels.items())), 0.0)
