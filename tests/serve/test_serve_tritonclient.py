"""Compatibility with a client nobody here wrote: NVIDIA's ``tritonclient[http]`` against the server.

Metadata, liveness/readiness, and inference with JSON and with binary tensors must work and match
onnxruntime run directly on the same file.
"""
from __future__ import annotations

import numpy as np
import pytest

from serve_helpers import ort_run, running

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


def _client(server):
    return httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}", connection_timeout=15.0,
                                            network_timeout=15.0)


def test_metadata_health_and_readiness(models):
    with running(models["two"]) as (server, _):
        client = _client(server)
        try:
            assert client.is_server_live() and client.is_server_ready()
            assert client.is_model_ready("two") and client.is_model_ready("two", "1")
            assert not client.is_model_ready("absent")
            meta = client.get_server_metadata()
            assert meta["name"] == "graphforge" and "binary_tensor_data" in meta["extensions"]
            model = client.get_model_metadata("two")
            assert [(i["name"], i["datatype"], i["shape"]) for i in model["inputs"]] == [
                ("a", "FP32", [-1, 3]), ("b", "FP32", [-1, 3])]
            assert [o["name"] for o in model["outputs"]] == ["sum", "prod"]
            with pytest.raises(InferenceServerException, match="unknown model 'absent'"):
                client.get_model_metadata("absent")
        finally:
            client.close()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_matches_onnxruntime(models, binary):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((4, 3)).astype(np.float32)
    want = ort_run(models["two"], {"a": a, "b": b})
    with running(models["two"]) as (server, _):
        client = _client(server)
        try:
            inputs = [httpclient.InferInput("a", list(a.shape), "FP32"), httpclient.InferInput("b", list(b.shape), "FP32")]
            inputs[0].set_data_from_numpy(a, binary_data=binary)
            inputs[1].set_data_from_numpy(b, binary_data=binary)
            outputs = [httpclient.InferRequestedOutput("sum", binary_data=binary),
                       httpclient.InferRequestedOutput("prod", binary_data=binary)]
            result = client.infer("two", inputs, outputs=outputs, request_id="r1")
            np.testing.assert_allclose(result.as_numpy("sum"), want[0], rtol=1e-6)
            np.testing.assert_allclose(result.as_numpy("prod"), want[1], rtol=1e-6)
            assert result.get_response()["model_version"] == "1" and result.get_response()["id"] == "r1"
            # no outputs named: tritonclient asks for all of them in binary
            result = client.infer("two", inputs, model_version="1")
            np.testing.assert_allclose(result.as_numpy("sum"), want[0], rtol=1e-6)
        finally:
            client.close()


def test_errors_reach_the_client(models):
    with running(models["small"]) as (server, _):
        client = _client(server)
        try:
            x = httpclient.InferInput("x", [1, 5], "FP32")
            x.set_data_from_numpy(np.ones((1, 5), np.float32))
            with pytest.raises(InferenceServerException, match=r"shape \[1, 5\]") as info:
                client.infer("small", [x])
            assert info.value.status() == "400"
        finally:
            client.close()


def test_mlp_binary_batch_of_rows(models):
    x = np.random.default_rng(0).standard_normal((16, 784)).astype(np.float32)
    want = ort_run(models["mlp"], {"x": x})[0]
    with running(models["mlp"]) as (server, _):
        client = _client(server)
        try:
            inp = httpclient.InferInput("x", [16, 784], "FP32")
            inp.set_data_from_numpy(x, binary_data=True)
            got = client.infer("mlp", [inp]).as_numpy("y")
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        finally:
            client.close()
