"""The ``Example:`` sections of public docstrings run as written (issue #22).

Each example is a self-contained snippet: it sees ``gf``, ``nn`` and ``np`` and nothing else, so a
docstring that names an argument, dtype or backend wrongly fails here. Listed are the names whose
examples run on the NumPy reference back end (fast); ``gf.profile``'s, which times a JAX run, is in
the slow tier.
"""
from __future__ import annotations

import inspect
import re
import textwrap

import numpy as np
import pytest

from docstring_rules import resolve

_FAST = (
    [f"graphforge.{n}" for n in ("floor", "ceil", "round", "acos", "asin", "atan", "acosh", "asinh", "atanh", "sinh",
                                 "cosh", "tan", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "bit_shift",
                                 "scan", "while_loop", "fori_loop", "dropout_mask", "random_uniform", "quantize",
                                 "memory_report", "string_normalizer", "string_concat", "string_split",
                                 "grid_sample", "affine_grid", "roi_align", "max_roi_pool")]
    + [f"graphforge.nn.{n}" for n in ("sinusoidal_table", "PositionalEncoding", "LearnedPositionalEmbedding",
                                      "RotaryEmbedding", "TransformerDecoderLayer", "RNNCell", "GRUCell", "LSTMCell",
                                      "RNN", "GRU", "LSTM", "remat", "generate_cached")]
)


def examples(dotted: str) -> list[str]:
    """The ```python blocks of ``dotted``'s docstring, dedented."""
    doc = inspect.getdoc(resolve(dotted)) or ""
    return [textwrap.dedent(code) for code in re.findall(r"```python\n(.*?)```", doc, re.S)]


def _run(dotted: str) -> dict:
    import graphforge as gf
    from graphforge import nn

    blocks = examples(dotted)
    assert blocks, f"{dotted}: no ```python example in its docstring"
    ns = {"gf": gf, "nn": nn, "np": np}
    for code in blocks:
        exec(compile(code, f"<example of {dotted}>", "exec"), ns)
    return ns


@pytest.mark.parametrize("dotted", _FAST)
def test_example_runs(dotted):
    _run(dotted)


@pytest.mark.slow
def test_profile_example_runs():
    ns = _run("graphforge.profile")
    assert "linear" in str(ns["report"])


def test_examples_compute_what_they_say():
    """Spot checks of the values the examples' comments quote."""
    assert np.array_equal(_run("graphforge.round")["y"], [0.0, 2.0, 2.0])
    assert np.array_equal(_run("graphforge.bit_shift")["y"], [0, -4])
    assert np.array_equal(_run("graphforge.bitwise_not")["y"], [255, 240])
    assert float(_run("graphforge.while_loop")["y"]) == 192.0
    assert np.array_equal(_run("graphforge.fori_loop")["y"], [6.0, 6.0])
    scan = _run("graphforge.scan")
    assert np.array_equal(scan["total"], [3.0, 3.0]) and np.array_equal(scan["ys"][:, 0], [1.0, 2.0, 3.0])
    assert _run("graphforge.nn.remat")["g"].remat_scopes == {"0": "nothing"}
    assert _run("graphforge.nn.LSTM")["out"].shape == (2, 5, 8)
    assert list(_run("graphforge.string_normalizer")["y"]) == ["cat"]
    assert list(_run("graphforge.string_concat")["y"]) == ["abx", "cyz"]
    split = _run("graphforge.string_split")
    assert split["pieces"].tolist() == [["a", "b", "c"], ["d", "", ""]] and split["counts"].tolist() == [3, 1]
    warp = _run("graphforge.grid_sample")
    assert np.allclose(warp["y"], warp["x"], atol=1e-6)
    assert _run("graphforge.affine_grid")["grid"].shape == (1, 2, 3, 2)
    assert _run("graphforge.roi_align")["y"].shape == (1, 1, 2, 2)
    assert _run("graphforge.max_roi_pool")["y"].tolist() == [[[[5.0, 7.0], [13.0, 15.0]]]]
    ns = _run("graphforge.nn.PositionalEncoding")
    assert np.allclose(ns["y"][0], ns["nn"].sinusoidal_table(5, 8), atol=1e-6)
