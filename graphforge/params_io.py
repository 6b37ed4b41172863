"""Weights on disk: safetensors, written atomically (temp file + rename), read without pickle."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Mapping

import numpy as np

from . import dtypes as _dt
from .errors import LoadError

__all__ = ["save_params", "load_params", "save_arrays", "load_arrays", "atomic_write_bytes"]

_BF16_TAG = "graphforge.bf16"


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and an atomic rename."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_arrays(arrays: Mapping[str, np.ndarray], path: str, metadata: Mapping[str, str] | None = None) -> None:
    """Save named arrays to a safetensors file atomically (bfloat16 kept bit-exact)."""
    from safetensors.numpy import save

    bf16 = _dt.to_numpy_dtype("bfloat16")
    tensors, tagged = {}, []
    for name, array in arrays.items():
        array = np.asarray(array, order="C")  # (np.ascontiguousarray would turn a 0-d array into 1-d)
        if array.dtype == bf16:
            tagged.append(name)
            array = array.view(np.uint16)
        tensors[name] = array
    meta = dict(metadata or {})
    if tagged:
        meta[_BF16_TAG] = json.dumps(tagged)
    try:
        data = save(tensors, metadata=meta or None)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise LoadError(f"cannot serialise parameters to {path}: {exc}") from None
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise LoadError(f"cannot write {path}: {exc.strerror or exc}") from None


def load_arrays(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file: (arrays, metadata). Malformed files raise LoadError."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise LoadError(f"no such weights file: {path}")
    try:
        arrays = {}
        with safe_open(path, framework="numpy") as fh:
            meta = dict(fh.metadata() or {})
            for key in fh.keys():
                arrays[key] = fh.get_tensor(key)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - header/offset errors from the safetensors reader
        raise LoadError(f"{path} is not a valid safetensors file: {exc}") from None
    tagged = meta.pop(_BF16_TAG, None)
    if tagged:
        try:
            names = json.loads(tagged)
        except ValueError:
            raise LoadError(f"{path}: corrupt metadata entry {_BF16_TAG}") from None
        for name in names:
            if name in arrays:
                arrays[name] = arrays[name].view(_dt.to_numpy_dtype("bfloat16"))
    return arrays, meta


def save_params(graph_or_params, path: str) -> None:
    """Save a graph's parameters (or a dict of arrays) to ``path`` in safetensors format.

    Args:
        graph_or_params: a traced ``gf.Graph`` or a dict name -> array (e.g. ``trainer.state_dict()``).
        path: the ``.safetensors`` file to write.

    Raises:
        LoadError: ``graph_or_params`` is neither (an untraced module has no values yet).

    Example:
        ```python
        gf.save_params(g, "weights.safetensors")
        ```
    """
    params = getattr(graph_or_params, "params", graph_or_params)
    if not isinstance(params, Mapping):
        # an nn.Module's parameters get their values when it is traced, so only a Graph (or a dict) has them
        raise LoadError(f"gf.save_params saves a traced gf.Graph or a dict name -> array, got "
                        f"{type(graph_or_params).__name__}",
                        hint="trace the model first: g = gf.trace(model, gf.TensorSpec(shape, dtype)); "
                             "gf.save_params(g, path)")
    save_arrays(params, path, {"format": "graphforge.params"})


def load_params(path: str, graph=None) -> dict[str, np.ndarray]:
    """Load parameters; with ``graph``, check names/shapes/dtypes against it and install them.

    ``graph`` may also be an ``nn.Module`` or a ``gf.Trainer`` (anything with ``load_state_dict``):
    the weights are installed there, strictly. A trainer's graphs (``trainer.graph`` …) pass the
    weights on to the trainer, so it trains from them. ``load_params(graph, path)`` (the argument
    order of ``save_params``) is accepted too.

    Args:
        path: a ``.safetensors`` file written by :func:`save_params` (or any safetensors file).
        graph: None, or the ``gf.Graph`` / ``nn.Module`` / ``gf.Trainer`` to install the weights in.

    Returns:
        The arrays by name.

    Raises:
        LoadError: the file is missing or not safetensors.
        StateDictError: with ``graph``, a name is missing or unexpected, or a shape/dtype differs.

    Example:
        ```python
        arrays = gf.load_params("weights.safetensors", g)   # g's params now hold them
        ```
    """
    if graph is not None and not isinstance(path, (str, os.PathLike)) and isinstance(graph, (str, os.PathLike)):
        path, graph = graph, path
    if not isinstance(path, (str, os.PathLike)):
        raise LoadError(f"gf.load_params needs the path of a .safetensors file, got {type(path).__name__}",
                        hint="call gf.load_params(path, graph) or gf.load_params(graph, path)")
    arrays, _ = load_arrays(path)
    if graph is not None and not hasattr(graph, "param_values"):
        if not hasattr(graph, "load_state_dict"):
            raise LoadError(f"gf.load_params installs weights into a gf.Graph, an nn.Module or a gf.Trainer, got "
                            f"{type(graph).__name__}")
        graph.load_state_dict(arrays, strict=True)
        return arrays
    if graph is not None:
        missing = [n for n in graph.param_values if n not in arrays]
        unknown = [n for n in arrays if n not in graph.param_values]
        if missing or unknown:
            raise LoadError(f"{path} does not match graph {graph.name!r}: "
                            + (f"missing {missing[:5]}" if missing else "")
                            + ("; " if missing and unknown else "")
                            + (f"unexpected {unknown[:5]}" if unknown else ""),
                            hint="was it saved from a different model?")
        for name, array in arrays.items():
            want = graph.param_values[name].type
            if tuple(array.shape) != tuple(want.shape) or array.dtype != _dt.to_numpy_dtype(want.dtype):
                raise LoadError(f"{path}: parameter {name!r} is {array.dtype}{list(array.shape)}, the graph "
                                f"expects {want}")
        graph.params.update(arrays)
        # a graph a gf.Trainer owns: its params are a snapshot, the trainer holds the live weights
        for listener in graph.params_loaded_listeners:
            listener(arrays)
    return arrays
