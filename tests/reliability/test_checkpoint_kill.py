"""Crash-safe checkpoints: SIGKILL a training process while it writes checkpoints, then resume.
A handful of kills here; ``make fuzz`` runs 50 (``tests/fuzz/run.py --kill-runs``)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from graphforge.train import checkpoint as ckpt
from reliability.killtest import kill_campaign


def test_sigkill_while_checkpointing_never_leaves_a_bad_newest_checkpoint(tmp_path):
    stats = kill_campaign(3, seed=1, directory=str(tmp_path / "ckpts"), max_delay=0.3)
    assert stats["bad"] == 0, stats["problems"]
    assert stats["kills"] == 3 and stats["resumes_checked"] == 3


def _write(directory, step, value):
    return ckpt.write_checkpoint(str(directory), step, {"w": np.full((4,), value, np.float32)}, [np.zeros(2)],
                                 {"step": step}, keep=2)


def test_replacing_a_checkpoint_never_exposes_a_half_deleted_one(tmp_path, monkeypatch):
    """Regression: rewriting a step deleted the old directory in place (shutil.rmtree), so a kill
    mid-delete left ckpt-N/meta.json without its weights, and the next reader picked it."""
    _write(tmp_path, 1, 1.0)
    _write(tmp_path, 2, 2.0)
    real_rmtree = ckpt.shutil.rmtree

    calls = []

    def killed_midway(path, *a, **k):
        # what a SIGKILL during the first delete leaves: the weights gone, meta.json still there
        # (later calls are the writer's own clean-up, which a real kill would not run either)
        if calls:
            return real_rmtree(path, *a, **k)
        calls.append(path)
        os.unlink(os.path.join(path, "params.safetensors"))
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path, 2, 3.0)
    monkeypatch.setattr(ckpt.shutil, "rmtree", real_rmtree)
    params, _, meta = ckpt.read_checkpoint(str(tmp_path))  # must not pick a half-deleted directory
    assert meta["step"] in (1, 2)
    assert float(params["w"][0]) in (1.0, 2.0, 3.0)


def test_stale_temp_and_trash_directories_are_ignored_and_cleaned(tmp_path):
    _write(tmp_path, 1, 1.0)
    for stale in (".tmp-ckpt-dead", ".old-ckpt-dead"):
        os.makedirs(tmp_path / stale)
        (tmp_path / stale / "meta.json").write_text(json.dumps({"step": 99}))
    assert ckpt.latest_checkpoint(str(tmp_path)).endswith("ckpt-00000001")
    _write(tmp_path, 2, 2.0)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-00000001", "ckpt-00000002"]


def test_corrupt_meta_names_the_file(tmp_path):
    path = _write(tmp_path, 1, 1.0)
    with open(os.path.join(path, "meta.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(ckpt.LoadError, match="meta.json"):
        ckpt.read_checkpoint(str(tmp_path))


def test_a_completely_saved_step_stays_readable_while_it_is_rewritten(tmp_path, monkeypatch):
    """Regression (found by the kill test): moving the old copy of a step aside and then renaming
    the new one in place left a moment with no checkpoint of that step at all, so a kill there
    made the reader fall back to an older step although this one had been saved completely."""
    _write(tmp_path, 1, 1.0)
    _write(tmp_path, 2, 2.0)
    real_rename = os.rename

    def killed_before_second_rename(src, dst):
        if os.path.basename(src).startswith(".tmp-ckpt-"):
            raise KeyboardInterrupt  # killed after the old copy moved aside, before the new one landed
        return real_rename(src, dst)

    monkeypatch.setattr(ckpt.os, "rename", killed_before_second_rename)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path, 2, 3.0)
    monkeypatch.setattr(ckpt.os, "rename", real_rename)
    params, _, meta = ckpt.read_checkpoint(str(tmp_path))
    assert meta["step"] == 2 and float(params["w"][0]) == 2.0
    _write(tmp_path, 3, 4.0)  # the next writer tidies up: the old copy is back under its name or gone
    assert sorted(os.listdir(tmp_path)) == ["ckpt-00000002", "ckpt-00000003"]
