"""Shared fixtures for the graphforge test suite (helpers live in ``gf_testutil``)."""
from __future__ import annotations

import os

# XLA:CPU spends most of a small test's time in LLVM optimising kernels that then run microseconds.
# Tests compare values (within tolerances), not speed, so the suite compiles at LLVM -O0: about a
# quarter less CPU on the JAX-heavy files. HLO passes (fusion, buffer assignment, so
# memory_analysis) are unchanged. Set before any test imports jax; xdist workers inherit it, and a
# user's own XLA_FLAGS wins. Benchmarks and user code keep XLA's defaults.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

# Many tests compile the same small programs (the README MLP, one op at a few shapes), in both xdist
# workers and in the subprocesses of the example, docs and distributed tests. JAX's persistent
# compilation cache, in one fresh directory per test session that every one of those processes
# inherits, compiles each distinct program once per session: keys are the HLO, the compile options,
# the flags and the jaxlib version, so a hit is the executable XLA would have built. Every
# executable is cached (JAX's default skips those compiled in under a second: nearly all of a
# test's). The controller (or a plain run) creates the directory and removes it at the end; xdist
# workers inherit the variables. A caller's own setting wins.
_JAX_CACHE_OWNER = "JAX_COMPILATION_CACHE_DIR" not in os.environ and "PYTEST_XDIST_WORKER" not in os.environ
if _JAX_CACHE_OWNER:
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="graphforge-test-jax-cache-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


class _MLP(nn.Module):
    """The README's MLP (burn/PyTorch style): ``layer2(relu(layer1(x)))``. The class name and its
    forward living in this file are part of what tests assert (graph name ``_mlp``, ``conftest.py:``
    locations)."""

    def __init__(self, d_in: int = 6, hidden: int = 8, d_out: int = 3, dtype: str = "float32"):
        super().__init__()
        self.layer1 = nn.Linear(d_in, hidden, dtype=dtype)
        self.layer2 = nn.Linear(hidden, d_out, dtype=dtype)

    def forward(self, x):
        return self.layer2(self.layer1(x).relu())


def readme_mlp(d_in: int = 6, hidden: int = 8, d_out: int = 3, *, style: str = "module",
               dtype: str = "float32") -> nn.Module:
    """A fresh README MLP: ``style="module"`` (params ``layer1.*``, ``layer2.*``) or ``"seq"`` (the
    tch-rs builder: params ``0.*``, ``2.*``)."""
    if style == "seq":
        return nn.seq().add(nn.Linear(d_in, hidden, dtype=dtype)).add_fn(gf.relu).add(nn.Linear(hidden, d_out, dtype=dtype))
    return _MLP(d_in, hidden, d_out, dtype)


@pytest.fixture(scope="session")
def make_mlp():
    """The README MLP factory: ``make_mlp(d_in, hidden, d_out, style="module"|"seq", dtype=...)``."""
    return readme_mlp


@pytest.fixture
def mlp_module() -> nn.Module:
    """The README's MLP (burn/PyTorch style), small: 6 -> 8 -> 3."""
    return readme_mlp()


@pytest.fixture
def mlp_seq() -> nn.Module:
    """The same MLP in the tch-rs builder style."""
    return readme_mlp(style="seq")


@pytest.fixture
def mlp_graph(mlp_module) -> gf.Graph:
    return gf.trace(mlp_module, gf.TensorSpec(("batch", 6), "float32"), seed=0)


# ---- scheduling: the costliest files first ---------------------------------------------------------
# `make test` runs two xdist workers with --dist loadfile (a file's tests share module fixtures, so a
# file stays on one worker) and --no-loadscope-reorder, so files are handed out in the order below.
# xdist's own reorder sorts files by test *count*, which put the few-but-slow files (the docs pages,
# the conformance sample, the fuzz sample) last, where one worker ran them while the other idled.
# Longest-first is the classic list-scheduling fix. The figures are worker seconds per file from a
# clean-clone run (2026-12-03 evening, 2-core VM, load 5); a file not listed is cheap and keeps its collection order
# after these. Stale figures only cost balance, never correctness.
_FILE_SECONDS = {
    "docs/test_snippets.py": 92, "fuzz/test_fuzz.py": 57, "runtimes/test_jax_grad.py": 52,
    "benchmarks/test_bench_smoke.py": 48, "nn/test_recurrent.py": 38, "distributed/test_peer_failure.py": 37,
    "distributed/test_multiprocess.py": 34, "examples/test_char_lm_example.py": 33,
    "distributed/test_data_parallel.py": 32, "runtimes/test_jax_ops.py": 31, "examples/test_gan_example.py": 29,
    "ops/test_interpolate.py": 28, "ops/test_gradients.py": 28, "ops/test_control_flow.py": 28,
    "runtimes/test_onnx_ops.py": 23, "runtimes/test_torch_dynamic_exports.py": 22,
    "runtimes/test_onnx_import.py": 22, "passes/test_remat.py": 21, "examples/test_transformer_example.py": 21,
    "runtimes/test_quantize_cnn.py": 19, "examples/test_mlp_example.py": 18,
    "examples/test_custom_layer_example.py": 18, "train/test_callbacks.py": 17,
    "runtimes/test_onnx_resize_symbolic.py": 17, "runtimes/test_normalising_ops.py": 17,
    "runtimes/test_jax_conv_impl.py": 16, "runtimes/test_cli_optimize.py": 16, "nn/test_sequence_decoder.py": 16,
    "benchmarks/test_bench_precision_remat.py": 16, "runtimes/test_lowering_tables.py": 15,
    "runtimes/test_jax_pool_grad.py": 15, "train/test_trainer.py": 14, "cli/test_compile.py": 14,
    "runtimes/test_onnx_import_sequences.py": 13, "ops/test_op_table.py": 13,
    "reliability/test_checkpoint_kill.py": 12, "conformance/test_conformance.py": 12,
    "docs/test_docs_build.py": 11, "benchmarks/test_gpu_check.py": 11, "train/test_trainer_mixed_precision.py": 10,
    "train/test_cli_train.py": 10, "test_packaging.py": 10, "runtimes/test_onnx_import_signal_misc.py": 10,
    "runtimes/test_onnx_control_flow.py": 10, "distributed/test_fsdp.py": 9, "reliability/test_hostile_inputs.py": 8,
    "ops/test_vision_roi.py": 8, "nn/test_generation.py": 7,
}


def pytest_collection_modifyitems(config, items):
    tests_dir = os.path.dirname(__file__)

    def cost(item) -> float:
        rel = os.path.relpath(str(item.path), tests_dir).replace(os.sep, "/")
        return _FILE_SECONDS.get(rel, 0.0)

    items.sort(key=cost, reverse=True)  # stable: within a file, and among unlisted files, order is kept


def pytest_unconfigure(config):
    if _JAX_CACHE_OWNER:
        import shutil

        shutil.rmtree(os.environ.get("JAX_COMPILATION_CACHE_DIR", ""), ignore_errors=True)
