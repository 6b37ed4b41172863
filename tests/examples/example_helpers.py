"""Helpers for the example tests: the repository root and loading an example file in-process."""
from __future__ import annotations

import importlib.util
import os

__all__ = ["ROOT", "load_example"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_example(name):
    """Import examples/<name>.py in-process (sharing the JAX import and compile caches across tests)."""
    spec = importlib.util.spec_from_file_location(f"gf_example_{name}", os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
