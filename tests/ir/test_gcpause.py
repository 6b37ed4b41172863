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


def test_leaving_a_pause_promotes_its_objects_within_the_budget(monkeypatch):
    from graphforge.ir import gcpause

    gc.enable()
    gc.collect()
    monkeypatch.setattr(gcpause, "_promoted", 0)
    keep = []
    with gc_paused():
        keep.extend([x] for x in range(5000))  # lists: tracked objects
    assert gc.get_count()[0] < 100  # promoted: no young collection is pending over them
    assert gcpause._promoted >= 5000
    assert gc.get_freeze_count() == 0  # nothing left frozen
    gc.collect()  # a full collection examines them: the budget starts again
    assert gcpause._promoted == 0


def test_no_promotion_over_the_budget_or_with_frozen_objects(monkeypatch):
    from graphforge.ir import gcpause

    gc.enable()
    gc.collect()
    monkeypatch.setattr(gcpause, "PROMOTE_BUDGET", 1000)
    monkeypatch.setattr(gcpause, "_promoted", 0)
    keep = []
    with gc_paused():
        keep.extend([x] for x in range(5000))
    assert gcpause._promoted == 0  # over the budget: the collector's usual path
    monkeypatch.setattr(gcpause, "PROMOTE_BUDGET", 10**9)
    gc.freeze()
    try:
        with gc_paused():
            keep.extend([x] for x in range(5000))
        assert gcpause._promoted == 0 and gc.get_freeze_count() > 0  # the application's freeze is left alone
    finally:
        gc.unfreeze()
