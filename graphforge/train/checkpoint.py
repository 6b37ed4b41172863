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
    tmp = tempfile.mkdtemp(prefix=".tmp-ckpt-", dir=directory)
    try:
        save_arrays({k: np.asarray(v) for k, v in params.items()}, os.path.join(tmp, "params.safetensors"))
        save_arrays({f"leaf_{i:05d}": np.asarray(v) for i, v in enumerate(opt_leaves)},
                    os.path.join(tmp, "opt_state.safetensors"))
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ckpts = _list(directory)
    for old in ckpts[:-keep] if keep > 0 else []:
        shutil.rmtree(os.path.join(directory, old), ignore_errors=True)
    return final


def _list(directory: str) -> list[str]:
    if not os.path.isdir(directory):
        return []
    return sorted(d for d in os.listdir(directory)
                  if d.startswith("ckpt-") and os.path.isfile(os.path.join(directory, d, "meta.json")))


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
    try:
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        params, _ = load_arrays(os.path.join(path, "params.safetensors"))
        leaves, _ = load_arrays(os.path.join(path, "opt_state.safetensors"))
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign files
        raise LoadError(f"cannot read checkpoint {path!r}: {type(exc).__name__}: {exc}") from None
    return params, [leaves[k] for k in sorted(leaves)], meta
