"""The served model: an ONNX file, its signature, request checks and the onnxruntime session.

:class:`ModelRunner` reads the file once (sha256, opset, producer, input/output types with
symbolic dims), opens an onnxruntime session (CUDA when available, else CPU), decides whether the
model can be batched dynamically (every input and output has a symbolic first dim), and turns
request arrays into validated feeds. ``onnx`` and ``onnxruntime`` are imported lazily.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from graphforge.errors import LoadError

from .errors import BadRequestError, InferenceError

__all__ = ["TensorInfo", "ModelRunner", "Dim", "default_providers"]

Dim = int | str | None
"""One dimension: a fixed size, a symbolic name (ONNX ``dim_param``) or ``None`` (unknown)."""


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (``None`` when the rank is unknown) and numpy dtype of a model input/output."""

    name: str
    shape: tuple[Dim, ...] | None
    dtype: np.dtype

    def shape_text(self) -> str:
        """``[batch, 784]``, with ``?`` for an unknown dim and ``[...]`` for an unknown rank."""
        if self.shape is None:
            return "[...]"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": None if self.shape is None else list(self.shape),
                "dtype": self.dtype.name}


def default_providers() -> list[str]:
    """``CUDAExecutionProvider`` (then CPU) when this onnxruntime build has it, else CPU only.

    The ONNX back end's choice, so ``gf.run(..., backend="onnxruntime")`` and the server agree.
    """
    from graphforge.runtimes.onnx import default_providers as _runtime_default

    return list(_runtime_default())


def _value_info(vi, what: str, path: str) -> TensorInfo:
    from onnx import helper

    if vi.type.WhichOneof("value") != "tensor_type":
        raise LoadError(f"{what} '{vi.name}' of {path} is not a tensor "
                        f"({vi.type.WhichOneof('value')}); graphforge serve handles tensors only")
    tt = vi.type.tensor_type
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
    except Exception as exc:  # unknown/undefined element type
        raise LoadError(f"{what} '{vi.name}' of {path} has an unsupported element type "
                        f"{tt.elem_type}") from exc
    if dtype.kind not in "biuf":
        raise LoadError(f"{what} '{vi.name}' of {path} has dtype {dtype}; graphforge serve "
                        "handles numeric and bool tensors only")
    shape: tuple[Dim, ...] | None = None
    if tt.HasField("shape"):
        dims: list[Dim] = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param") and d.dim_param:
                dims.append(d.dim_param)
            else:
                dims.append(None)
        shape = tuple(dims)
    return TensorInfo(vi.name, shape, dtype)


def _batch_symbol(infos: list[TensorInfo]) -> tuple[bool, str | None]:
    """(batchable, symbol): every tensor has a symbolic/unknown first dim, named alike if named."""
    names = set()
    for info in infos:
        if info.shape is None:
            continue  # unknown rank: accepted, checked on the outputs at run time
        if not info.shape or isinstance(info.shape[0], int):
            return False, None
        if isinstance(info.shape[0], str):
            names.add(info.shape[0])
    if len(names) > 1:
        return False, None
    return True, next(iter(names), None)


class ModelRunner:
    """One ONNX model ready to serve. ``run`` is thread-safe (onnxruntime sessions are)."""

    def __init__(self, path: str | os.PathLike, *, providers: list[str] | None = None):
        import onnx

        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise LoadError(f"cannot read model {self.path}: {exc.strerror or exc}") from exc
        self.sha256 = hashlib.sha256(data).hexdigest()
        try:
            proto = onnx.load_model_from_string(data)
        except Exception as exc:
            raise LoadError(f"{self.path} is not a valid ONNX model: {exc}") from exc
        del data
        self.providers_requested = list(providers or default_providers())
        from graphforge.errors import BackendError
        from graphforge.runtimes.onnx import OrtSession

        # The one onnxruntime session class of the ONNX back end, so `gf.run` and the server open
        # models alike (providers, optimisation level, bfloat16 handling).
        try:
            # Idle intra-op threads would otherwise spin between calls, taking CPU from the event
            # loop that feeds them (measured: ~2x CPU per request on 2 cores; docs/serving.md).
            self.session = OrtSession(self.path, self.providers_requested,
                                      session_config={"session.intra_op.allow_spinning": "0"})
        except BackendError as exc:
            raise LoadError(f"onnxruntime cannot load {self.path}: {exc}") from exc
        self.providers = list(self.session.providers)

        graph_inputs = {vi.name: vi for vi in proto.graph.input}
        self.inputs = [_value_info(graph_inputs[n], "input", self.path) for n in self.session.input_names]
        graph_outputs = {vi.name: vi for vi in proto.graph.output}
        self.outputs = [_value_info(graph_outputs[n], "output", self.path) for n in self.session.output_names]
        self.input_names = [i.name for i in self.inputs]
        self.output_names = [o.name for o in self.outputs]
        self._by_name = {i.name: i for i in self.inputs}

        in_ok, in_sym = _batch_symbol(self.inputs)
        out_ok, out_sym = _batch_symbol(self.outputs)
        self.batchable = bool(self.inputs) and in_ok and out_ok and (
            out_sym is None or in_sym is None or out_sym == in_sym)
        self.batch_dim = in_sym if self.batchable else None

        self.ir_version = int(proto.ir_version)
        self.opset_imports = {(op.domain or "ai.onnx"): int(op.version) for op in proto.opset_import}
        self.opset = self.opset_imports.get("ai.onnx")
        self.producer = {"name": proto.producer_name, "version": proto.producer_version}
        self.graph_name = proto.graph.name
        self.metadata = {p.key: p.value for p in proto.metadata_props}

    # -- requests -----------------------------------------------------------------------------
    def validate(self, arrays: Mapping[str | None, np.ndarray], *, from_json: bool
                 ) -> tuple[dict[str, np.ndarray], int | None]:
        """Check names, dtypes and shapes; return the feeds and their row count.

        ``arrays`` maps input names (``None`` for "the only input") to arrays as decoded. JSON
        numbers are cast to the model's dtype (floats to the float type, integers to int types);
        binary arrays must already have the model's dtype or one that casts to it safely. The row
        count is the shared first dim when the model is batchable, else ``None``.
        """
        arrays = dict(arrays)
        if None in arrays:
            if len(self.inputs) != 1:
                raise BadRequestError(
                    f"the model has {len(self.inputs)} inputs {self.input_names}; name them, e.g. "
                    '{"inputs": {' + ", ".join(f'"{n}": [...]' for n in self.input_names) + "}} "
                    "or an .npz with one array per input")
            if len(arrays) > 1:
                raise BadRequestError("got an unnamed array together with named ones")
            arrays = {self.input_names[0]: arrays.pop(None)}
        unknown = [n for n in arrays if n not in self._by_name]
        if unknown:
            raise BadRequestError(f"unknown input {unknown[0]!r}; the model's inputs are {self.input_names}")
        missing = [n for n in self.input_names if n not in arrays]
        if missing:
            raise BadRequestError(f"missing input {missing[0]!r}; the model's inputs are {self.input_names}")

        feeds: dict[str, np.ndarray] = {}
        bound: dict[str, tuple[int, str]] = {}  # symbolic dim -> (size, input that fixed it)
        for info in self.inputs:
            arr = _coerce(info, arrays[info.name], from_json=from_json)
            if info.shape is not None:
                if arr.ndim != len(info.shape) or any(
                        isinstance(d, int) and d != s for d, s in zip(info.shape, arr.shape)):
                    raise BadRequestError(f"input {info.name!r} has shape {list(arr.shape)}, "
                                          f"the model expects {info.shape_text()}")
                for d, s in zip(info.shape, arr.shape):
                    if isinstance(d, str):
                        if d in bound and bound[d][0] != s:
                            raise BadRequestError(
                                f"dimension {d!r} is {bound[d][0]} in input {bound[d][1]!r} but "
                                f"{s} in input {info.name!r} (shape {list(arr.shape)})")
                        bound.setdefault(d, (s, info.name))
            feeds[info.name] = arr
        rows = None
        if self.batchable:
            firsts = {name: (a.shape[0] if a.ndim else None) for name, a in feeds.items()}
            if any(v is None for v in firsts.values()):
                raise BadRequestError("every input needs a batch (first) dimension")
            if len(set(firsts.values())) > 1:
                raise BadRequestError(f"inputs disagree on the batch (first) dimension: {firsts}")
            rows = next(iter(firsts.values()))
        return feeds, rows

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """One onnxruntime call; errors become :class:`InferenceError` (400 for InvalidArgument)."""
        try:
            return self.session.run(dict(feeds))
        except Exception as exc:
            # OrtSession wraps onnxruntime's own exception; its type says whose fault it was.
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            kind = type(cause).__name__
            status = 400 if kind == "InvalidArgument" else 500
            raise InferenceError(f"inference failed ({kind}): {cause}", status=status) from exc

    # -- description --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The ``GET /v1/model`` document."""
        import graphforge

        return {
            "name": self.graph_name or os.path.splitext(os.path.basename(self.path))[0],
            "file": os.path.basename(self.path),
            "sha256": self.sha256,
            "inputs": [i.to_json() for i in self.inputs],
            "outputs": [o.to_json() for o in self.outputs],
            "opset": self.opset,
            "opset_imports": self.opset_imports,
            "ir_version": self.ir_version,
            "producer": self.producer,
            "metadata": self.metadata,
            "graphforge_version": graphforge.__version__,
            "providers": self.providers,
            "batchable": self.batchable,
            "batch_dim": self.batch_dim,
        }


def _coerce(info: TensorInfo, arr: np.ndarray, *, from_json: bool) -> np.ndarray:
    """``arr`` in ``info.dtype``, or a :class:`BadRequestError` naming the input and the dtypes."""
    want = info.dtype
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise BadRequestError(f"input {info.name!r} has non-numeric data ({_kind_text(arr)}); "
                              f"the model expects {want.name}")
    if arr.dtype == want:
        return arr
    if not from_json:
        if np.can_cast(arr.dtype, want, casting="safe"):
            return arr.astype(want)
        raise BadRequestError(f"input {info.name!r} has dtype {arr.dtype.name}, the model expects "
                              f"{want.name} (send {want.name}, or JSON to have numbers cast)")
    # JSON: numbers cast to the model's kind of number.
    if want.kind == "f":
        if kind == "b":
            raise BadRequestError(f"input {info.name!r} has booleans, the model expects {want.name} numbers")
        return arr.astype(want)
    if want.kind in "iu":
        if kind == "b":
            raise BadRequestError(f"input {info.name!r} has booleans, the model expects {want.name} integers")
        if kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise BadRequestError(f"input {info.name!r} has non-integer numbers, "
                                      f"the model expects {want.name}")
        if arr.size:
            lo, hi = arr.min(), arr.max()
            limits = np.iinfo(want)
            if lo < limits.min or hi > limits.max:
                raise BadRequestError(f"input {info.name!r} has values outside the {want.name} range "
                                      f"[{limits.min}, {limits.max}]")
        return arr.astype(want)
    # bool model input: JSON true/false, or 0/1.
    if kind in "iu" and (arr.size == 0 or set(np.unique(arr).tolist()) <= {0, 1}):
        return arr.astype(want)
    raise BadRequestError(f"input {info.name!r} expects booleans (true/false), got {arr.dtype.name} values")


def _kind_text(arr: np.ndarray) -> str:
    if arr.dtype.kind in "US":
        return "strings"
    if arr.dtype.kind == "c":
        return "complex numbers"
    if arr.dtype.kind == "O":
        return "nulls, objects or numbers out of range"
    return f"dtype {arr.dtype}"
