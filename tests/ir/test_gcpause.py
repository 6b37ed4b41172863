"""gc_paused: the collector is off inside, restored after (also on error, nested, or already off)."""
from __future__ import annotations

import gc

import pytest

import graphforge as gf
from graphforge.ir.gcpause import gc_paused


@pytest.fixture(autouse=True)
def _restore_gc():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_inside_and_restored_after_an_error():
    gc.enable()
    with pytest.raises(RuntimeError):
        with gc_paused():
            assert not gc.isenabled()
            with gc_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()  # the inner pause does not re-enable early
            raise RuntimeError
    assert gc.isenabled()


def test_a_collector_the_caller_disabled_stays_off():
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_trace_optimize_and_export_leave_the_collector_on(mlp_module):
    gc.enable()
    g = gf.trace(mlp_module, gf.TensorSpec(("batch", mlp_module.layer1.in_features), "float32"))
    gf.to_onnx(gf.optimize(g))
    assert gc.isenabled()
