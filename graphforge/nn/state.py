"""``Module.state_dict`` / ``Module.load_state_dict``: a model's weights as NumPy arrays by
PyTorch-style names (``layer1.weight``, ``0.bias``, ``bn.running_mean``), in and out.

``load_state_dict`` takes a mapping name -> array-like (NumPy arrays, or PyTorch tensors, duck-typed
on ``.detach().cpu().numpy()`` so torch is never imported) or the path of a ``.safetensors`` /
``.npz`` file (e.g. written by PyTorch's ``safetensors.torch.save_file``). For the layers whose
PyTorch names and layouts graphforge mirrors it also reads PyTorch's own spelling:

* ``MultiheadAttention``: ``in_proj_weight`` / ``in_proj_bias`` (the packed (3E, E) q/k/v
  projection) or ``q_proj_weight``/``k_proj_weight``/``v_proj_weight`` become ``q_proj``/``k_proj``/
  ``v_proj``'s ``weight``/``bias``;
* ``BatchNorm2d``: ``num_batches_tracked`` is accepted and dropped (graphforge updates running
  statistics with ``momentum``, so the count carries no information);
* Linear, Conv2d, ConvTranspose2d, LayerNorm, Embedding: the same names and layouts as PyTorch.

Everything is checked before anything is assigned: a mismatch leaves the module untouched.
"""
from __future__ import annotations

import os
from typing import Mapping, NamedTuple

import numpy as np

from .. import dtypes as _dt
from ..errors import LoadError, StateDictError

__all__ = ["IncompatibleKeys", "state_dict", "load_state_dict", "load_graph_state", "check_state", "to_numpy",
           "read_state_source"]


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(..., strict=False)`` did not use (PyTorch's return value)."""
    missing_keys: list
    unexpected_keys: list


def to_numpy(value, name: str = "") -> np.ndarray:
    """``value`` as a NumPy array: torch tensors through ``.detach().cpu().numpy()`` (duck-typed)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        try:
            return np.asarray(value.detach().cpu().numpy())
        except (TypeError, RuntimeError) as exc:  # e.g. torch.bfloat16 has no NumPy dtype
            raise StateDictError(f"state dict entry {name!r}: cannot convert the tensor to NumPy: {exc}",
                                 hint="convert it first, e.g. {k: v.float() for k, v in sd.items()}") from None
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise StateDictError(f"state dict entry {name!r} is not array-like ({type(value).__name__}): {exc}") from None


def read_state_source(source) -> dict[str, np.ndarray]:
    """A mapping or the path of a ``.safetensors`` / ``.npz`` file, as name -> NumPy array."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.endswith(".npz"):
            if not os.path.isfile(path):
                raise LoadError(f"no such weights file: {path}")
            try:
                with np.load(path, allow_pickle=False) as z:  # no pickle: a weights file runs no code
                    return {k: z[k] for k in z.files}
            except (OSError, ValueError) as exc:
                raise LoadError(f"{path} is not a valid .npz file: {exc}") from None
        from ..params_io import load_arrays
        return load_arrays(path)[0]
    if not isinstance(source, Mapping):
        raise StateDictError(f"load_state_dict takes a dict name -> array or a .safetensors/.npz path, got "
                             f"{type(source).__name__}",
                             hint="e.g. model.load_state_dict(trainer.state_dict()) or model.load_state_dict('w.safetensors')")
    return {str(k): to_numpy(v, str(k)) for k, v in source.items()}


def state_dict(module, seed: int = 0) -> dict[str, np.ndarray]:
    """Every parameter and buffer of ``module`` by name: its loaded value (``load_state_dict`` or a
    fixed ``Parameter(array)``), else the value ``gf.trace(module, ..., seed=seed)`` would give it."""
    out = {}
    for name, p in module.named_parameters():
        out[name] = np.array(p.materialize(name, seed))  # a copy: editing it leaves the module alone
    return out


def _split_rows(arrays: dict, key: str, targets: list[str]) -> None:
    value = arrays.pop(key)
    parts = np.split(value, len(targets), axis=0) if value.shape and value.shape[0] % len(targets) == 0 else None
    if parts is None:
        raise StateDictError(f"{key}: expected {len(targets)} equal blocks of rows, got shape {list(value.shape)}",
                             mismatched={key: f"{list(value.shape)}"})
    for t, part in zip(targets, parts):
        arrays[t] = part


def _from_pytorch(module, arrays: dict) -> None:
    """Rewrite PyTorch's spellings of the layers graphforge mirrors to graphforge's names, in place."""
    from .attention import MultiHeadAttention
    from .norm import BatchNorm2d

    for path, m in module.named_modules():
        pre = f"{path}." if path else ""
        if isinstance(m, MultiHeadAttention):
            for kind in ("weight", "bias"):
                if pre + f"in_proj_{kind}" in arrays:
                    _split_rows(arrays, pre + f"in_proj_{kind}", [f"{pre}{p}_proj.{kind}" for p in "qkv"])
            for p in "qkv":
                if pre + f"{p}_proj_weight" in arrays:
                    arrays[f"{pre}{p}_proj.weight"] = arrays.pop(pre + f"{p}_proj_weight")
        elif isinstance(m, BatchNorm2d):
            arrays.pop(pre + "num_batches_tracked", None)


def _fit(name: str, given: np.ndarray, param) -> tuple[np.ndarray | None, str | None]:
    """``given`` cast to the parameter's dtype, or None and why it does not fit."""
    want_dtype = _dt.to_numpy_dtype(param.dtype)
    if tuple(given.shape) != tuple(param.shape):
        return None, f"shape {list(given.shape)} in the state dict, {list(param.shape)} in the model"
    if given.dtype == want_dtype:
        return given, None
    # a float64 .npz for a float32 model is fine; float values for an int buffer (or the reverse) are not
    same_kind = (np.issubdtype(given.dtype, np.floating) or given.dtype == want_dtype) if _dt.is_float(param.dtype) \
        else np.can_cast(given.dtype, want_dtype, "same_kind")
    if not same_kind:
        return None, f"dtype {given.dtype} in the state dict, {param.dtype} in the model"
    return given.astype(want_dtype), None


def check_state(owner: str, arrays: dict, wanted: dict, strict: bool) -> tuple[dict, IncompatibleKeys]:
    """``arrays`` checked against ``wanted`` (name -> anything with ``shape``/``dtype``): the fitted
    arrays and what was missing/unexpected, or a StateDictError listing every offender."""
    missing = [n for n in wanted if n not in arrays]
    unexpected = [n for n in arrays if n not in wanted]
    mismatched, fitted = {}, {}
    for name, want in wanted.items():
        if name in arrays:
            value, why = _fit(name, arrays[name], want)
            if why:
                mismatched[name] = why
            else:
                fitted[name] = value
    if mismatched or (strict and (missing or unexpected)):
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:8])}"
                         f"{' …' if len(unexpected) > 8 else ''}")
        for name, why in list(mismatched.items())[:8]:
            parts.append(f"{name}: {why}")
        hint = ("load with strict=False to skip missing/unexpected names" if not mismatched else
                "was it saved from a model with other layer sizes? compare model.state_dict() shapes")
        raise StateDictError(f"{owner}: the state dict does not fit the model: " + "; ".join(parts),
                             missing=missing, unexpected=unexpected, mismatched=mismatched, hint=hint)
    return fitted, IncompatibleKeys(missing, unexpected)


def load_state_dict(module, source, strict: bool = True) -> IncompatibleKeys:
    """Install the arrays of ``source`` as ``module``'s parameter values (see the module docstring).

    ``strict``: missing or unexpected names are a ``StateDictError`` listing all of them; without it
    they are returned as ``IncompatibleKeys``. A shape/dtype mismatch is always an error."""
    arrays = read_state_source(source)
    _from_pytorch(module, arrays)
    own = dict(module.named_parameters())
    fitted, result = check_state(f"{type(module).__name__}.load_state_dict", arrays, own, strict)
    for name, value in fitted.items():
        own[name].data = np.array(value, copy=True)  # the caller's arrays stay theirs
    return result


def load_graph_state(graph, source, strict: bool = True) -> IncompatibleKeys:
    """``load_state_dict`` for a traced ``gf.Graph``: its params and buffers (not its constants)
    take the arrays of ``source``, checked the same way, all or nothing."""
    arrays = read_state_source(source)
    wanted = {n: v.type for n, v in graph.param_values.items() if v.kind in ("param", "buffer")}
    fitted, result = check_state(f"graph {graph.name!r}", arrays, wanted, strict)
    graph.params.update(fitted)
    return result
