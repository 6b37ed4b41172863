"""Fixtures for tests/serve (helpers live in ``serve_helpers``)."""
from __future__ import annotations

import pytest

from serve_helpers import build_models


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Paths of the test ONNX models: mlp (784-128-10), small (6-8-3), fixed (batch 4), two, gather."""
    return build_models(tmp_path_factory.mktemp("serve_models"))
