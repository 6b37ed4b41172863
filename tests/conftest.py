"""Shared fixtures for the graphforge test suite (helpers live in ``gf_testutil``)."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


class _MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Linear(6, 8)
        self.layer2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.layer2(self.layer1(x).relu())


@pytest.fixture
def mlp_module() -> nn.Module:
    """The README's MLP (burn/PyTorch style), small: 6 -> 8 -> 3."""
    return _MLP()


@pytest.fixture
def mlp_seq() -> nn.Module:
    """The same MLP in the tch-rs builder style."""
    return nn.seq().add(nn.Linear(6, 8)).add_fn(gf.relu).add(nn.Linear(8, 3))


@pytest.fixture
def mlp_graph(mlp_module) -> gf.Graph:
    return gf.trace(mlp_module, gf.TensorSpec(("batch", 6), "float32"), seed=0)
