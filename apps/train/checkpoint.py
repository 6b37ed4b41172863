"""Atomic training checkpoints: params + optimizer-state leaves in safetensors, metadata in JSON.

Layout: ``DIR/ckpt-<step:08d>/{params.safetensors, opt_state.safetensors, meta.json}``. A checkpoint
is written to a temporary sibling directory, fsynced, then renamed into place (readers never see a
partial one); only the last ``keep`` are kept."""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from ..errors import LoadError
from ..params_io import load_arrays, save_arrays

__all__ = ["write_checkpoint", "read_checkpoint", "latest_checkpoint", "checkpoint_path"]


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def checkpoint_path(directory: str, step: int) -> str:
    return os.path.join(directory, f"ckpt-{step:08d}")


def write_checkpoint(directory: str, step: int, params: dict, opt_leaves: list, meta: dict, keep: int = 3,
                     write: bool = True) -> str:
    """Write (``write=False``: only name) the checkpoint of ``step``. Multi-process runs pass
    ``write`` true on process 0 only, so a shared directory is written once."""
    final = checkpoint_path(directory, step)
    if not write:
        return final
    os.makedirs(directory, exist_ok=True)
    _remove_stale(directory)
    tmp = tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=directory)
    try:
        save_arrays({k: np.asarray(v) for k, v in params.items()}, os.path.join(tmp, "params.safetensors"))
        save_arrays({f"leaf_{i:05d}": np.asarray(v) for i, v in enumerate(opt_leaves)},
                    os.path.join(tmp, "opt_state.safetensors"))
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        # Replacing a checkpoint of the same step: a directory cannot be renamed over a non-empty
        # one, and deleting the old one in place could be interrupted (SIGKILL) with its meta.json
        # still there and its weights gone. So the old one is first renamed to ``<final>.replaced``
        # (still complete, still readable), then the new one is renamed into place, then the old
        # one is discarded: at every moment a complete checkpoint of this step is there to read.
        replaced = final + _REPLACED_SUFFIX
        if os.path.exists(final):
            if os.path.exists(replaced):
                _discard(directory, replaced)
            os.rename(final, replaced)
            _fsync_dir(directory)
        os.rename(tmp, final)
        _fsync_dir(directory)
        if os.path.exists(replaced):
            _discard(directory, replaced)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    steps = sorted({step for step, _, _ in _entries(directory)})
    for step, _, name in _entries(directory):
        if keep > 0 and step not in steps[-keep:]:
            _discard(directory, os.path.join(directory, name))
    return final


_TMP_PREFIX = ".tmp-ckpt-"   # being written: never read
_TRASH_PREFIX = ".old-ckpt-"  # being deleted: never read
_REPLACED_SUFFIX = ".replaced"  # a complete checkpoint that a newer save of its step is replacing


def _discard(directory: str, path: str) -> None:
    """Delete a checkpoint directory so that no reader ever sees it half deleted: rename it to a
    hidden trash name (atomic), then remove it."""
    trash = tempfile.mkdtemp(prefix=_TRASH_PREFIX, dir=directory)
    os.rmdir(trash)
    try:
        os.rename(path, trash)
    except OSError:
        return
    _fsync_dir(directory)
    shutil.rmtree(trash, ignore_errors=True)


def _remove_stale(directory: str) -> None:
    """Leftovers of a writer that was killed (half-written temp dirs, half-deleted trash)."""
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
            shutil.rmtree(path, ignore_errors=True)
        elif name.startswith("ckpt-") and name.endswith(_REPLACED_SUFFIX):
            plain = path[:-len(_REPLACED_SUFFIX)]
            if os.path.exists(plain):  # the replacement landed: the old copy is garbage
                _discard(directory, path)
            else:  # killed between the two renames: the old copy is the checkpoint
                os.rename(path, plain)


def _entries(directory: str) -> list[tuple[int, int, str]]:
    """Complete checkpoints as ``(step, rank, name)``, oldest first; of two copies of one step (a
    replacement in progress) the plain ``ckpt-N`` sorts last, so it wins."""
    if not os.path.isdir(directory):
        return []
    out = []
    for d in os.listdir(directory):
        stem = d[:-len(_REPLACED_SUFFIX)] if d.endswith(_REPLACED_SUFFIX) else d
        if not (stem.startswith("ckpt-") and stem[5:].isdigit()):
            continue
        if os.path.isfile(os.path.join(directory, d, "meta.json")):
            out.append((int(stem[5:]), 0 if stem != d else 1, d))
    return sorted(out)


def _list(directory: str) -> list[str]:
    return [name for _, _, name in _entries(directory)]


def latest_checkpoint(directory: str) -> str | None:
    """The newest complete checkpoint under ``directory`` (or ``directory`` itself if it is one)."""
    if os.path.isfile(os.path.join(directory, "meta.json")):
        return directory
    ckpts = _list(directory)
    return os.path.join(directory, ckpts[-1]) if ckpts else None


def read_checkpoint(directory: str) -> tuple[dict, list, dict]:
    path = latest_checkpoint(directory)
    if path is None:
        raise LoadError(f"no checkpoint found in {directory!r}")
    meta_path = os.path.join(path, "meta.json")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign files
        raise LoadError(f"cannot read checkpoint {path!r}: {meta_path} is corrupt: {type(exc).__name__}: {exc}",
                        hint="delete this checkpoint directory to resume from the one before it") from None
    params, _ = load_arrays(os.path.join(path, "params.safetensors"))  # LoadError naming the file
    leaves, _ = load_arrays(os.path.join(path, "opt_state.safetensors"))
    return params, [leaves[k] for k in sorted(leaves)], meta
