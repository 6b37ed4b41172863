"""Real PyTorch dynamic-shape ONNX exports import symbolically and run at other sizes.

The ONNX files and PyTorch's outputs come from tests/fixtures/make_dynamic_export_fixtures.py (run once
with torch; committed). Each model was exported at (batch 2, seq 5); the tests run it at sizes the
exporter never saw, on JAX and onnxruntime, against PyTorch's own eval-mode outputs."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphforge as gf

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "dynamic_exports")

MODELS = ("encoder_padmask", "encoder_normfirst", "mha", "groupnorm", "bert_like",
          "upsample",  # Resize by integer scales on symbolic H/W (issue #19)
          "gpt2_like")  # causal mask sliced from a tril buffer by the run-time length
BACKENDS = ("jax", "onnxruntime")
# each size is a JAX compilation: these models run on JAX at their first size only in the default tier
# (every size on onnxruntime), and at every size in the slow tier
JAX_FAST_SIZES = {"gpt2_like": 1}


def _cases(name):
    arrays = np.load(os.path.join(HERE, f"{name}.npz"))
    tags = sorted({k.split("/")[0] for k in arrays.files})
    for tag in tags:
        inputs = {k.split("/", 2)[2]: arrays[k] for k in arrays.files if k.startswith(f"{tag}/in/")}
        n_out = sum(1 for k in arrays.files if k.startswith(f"{tag}/out/"))
        yield tag, inputs, [arrays[f"{tag}/out/{j}"] for j in range(n_out)]


@pytest.fixture(scope="module", params=MODELS)
def imported(request):
    return request.param, gf.from_onnx(os.path.join(HERE, f"{request.param}.onnx"))


def test_the_batch_stays_symbolic(imported):
    name, graph = imported
    for value in graph.inputs:
        assert isinstance(value.type.shape[0], str), f"{name}: input {value.name} lost its dynamic batch"


@pytest.mark.parametrize("backend", BACKENDS)
def test_runs_at_sizes_the_exporter_never_saw(imported, backend):
    name, graph = imported
    cases = list(_cases(name))
    if backend == "jax" and name in JAX_FAST_SIZES:
        cases = cases[:JAX_FAST_SIZES[name]]
    _check(name, graph, cases, backend)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(JAX_FAST_SIZES))
def test_every_size_on_jax(name):
    _check(name, gf.from_onnx(os.path.join(HERE, f"{name}.onnx")), list(_cases(name)), "jax")


def _check(name, graph, cases, backend):
    for tag, inputs, expected in cases:
        got = gf.run(graph, inputs, backend=backend)
        assert len(got) == len(expected), f"{name} {tag}"
        for k, (g, e) in enumerate(zip(got, expected)):
            np.testing.assert_allclose(np.asarray(g), e, rtol=1e-4, atol=1e-5,
                                       err_msg=f"{name} at {tag}, output {k}, backend {backend}")


def test_a_length_past_the_position_table_breaks_the_imported_guard():
    """gpt2_like slices its 32-row causal-mask buffer by the run-time length: the import records
    ``seq <= 32`` and binding a longer input names it (before any kernel indexes out of range)."""
    graph = gf.from_onnx(os.path.join(HERE, "gpt2_like.onnx"))
    with pytest.raises(gf.InputError, match=r"seq <= 32.*seq = 33"):
        gf.run(graph, [np.zeros((1, 33), np.int64)])
