"""Serving a model exported by graphforge itself (``gf.trace`` -> ``save_onnx``), checked against
``gf.run`` on the reference back end and onnxruntime on the same file."""
from __future__ import annotations

import numpy as np
import pytest

from serve_helpers import ort_run, running

import graphforge as gf



def test_serves_graphforge_exported_mlp(tmp_path, make_mlp):
    net = make_mlp(784, 128, 10, style="seq")
    graph = gf.trace(net, gf.TensorSpec(("batch", 784), "float32"), seed=0)
    path = str(tmp_path / "gf_mlp.onnx")
    gf.save_onnx(graph, path)
    x = np.random.default_rng(7).standard_normal((5, 784)).astype(np.float32)
    with running(path) as (_, client):
        doc = client.get("/v1/model").json()
        assert doc["batchable"] is True
        (inp,) = doc["inputs"]
        assert inp["shape"] == ["batch", 784] and inp["dtype"] == "float32"
        resp = client.post("/v1/predict", json={"inputs": {inp["name"]: x.tolist()}})
        assert resp.status_code == 200, resp.text
        (got,) = resp.json()["outputs"].values()
    (want,) = ort_run(path, {inp["name"]: x})
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=1e-5, atol=1e-5)
    ref = gf.run(graph, {inp["name"]: x}, backend="reference")[0]
    np.testing.assert_allclose(np.asarray(got, np.float32), ref, rtol=1e-4, atol=1e-4)
