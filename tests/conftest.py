"""Shared fixtures for the graphforge test suite (helpers live in ``gf_testutil``)."""
from __future__ import annotations

import os

# XLA:CPU spends most of a small test's time in LLVM optimising kernels that then run microseconds.
# Tests compare values (within tolerances), not speed, so the suite compiles at LLVM -O0: about a
# quarter less CPU on the JAX-heavy files. HLO passes (fusion, buffer assignment, so
# memory_analysis) are unchanged. Set before any test imports jax; xdist workers inherit it, and a
# user's own XLA_FLAGS wins. Benchmarks and user code keep XLA's defaults.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

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
