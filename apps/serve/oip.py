"""Bodies of the Open Inference Protocol (KServe v2 / Triton HTTP): tensors as JSON and as binary.

A request is a JSON header, optionally followed by raw tensor bytes (the *binary tensor data*
extension): ``Inference-Header-Content-Length`` gives the header's length, and each input whose
``parameters.binary_data_size`` is set takes that many bytes, in input order, from what follows.
JSON tensors carry row-major ``data`` (flat or nested) with their ``shape`` and ``datatype``.

Answers carry the outputs asked for (all when ``outputs`` is absent), each as JSON ``data`` or as
binary (``parameters.binary_data`` on the output, or ``binary_data_output`` on the request).
Decoding never trusts the client: sizes are checked against shapes before any array is built.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import BadRequestError, PayloadTooLargeError

__all__ = ["DATATYPES", "datatype_of", "InferRequest", "parse_infer_request", "encode_infer_response",
           "HEADER_LENGTH"]

HEADER_LENGTH = "inference-header-content-length"

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
}
"""Protocol datatype names and the NumPy dtypes they travel as (little-endian on the wire)."""
_BY_DTYPE = {dt: name for name, dt in DATATYPES.items()}


def datatype_of(dtype: np.dtype) -> str:
    """The protocol name of a NumPy dtype (``float32`` → ``FP32``)."""
    name = _BY_DTYPE.get(np.dtype(dtype))
    if name is None:
        raise BadRequestError(f"dtype {np.dtype(dtype)} has no Open Inference Protocol datatype")
    return name


@dataclass
class InferRequest:
    """A decoded infer request: arrays by input name, the declared datatypes, the outputs asked for."""

    id: str | None
    arrays: dict[str, np.ndarray]
    datatypes: dict[str, str]
    outputs: list[tuple[str, bool | None]] | None  # (name, binary asked for or None), None: all
    binary_output: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def _header_length(value: str | None, body_len: int) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        raise BadRequestError(f"invalid Inference-Header-Content-Length {value!r}") from None
    if not 0 < n <= body_len:
        raise BadRequestError(f"Inference-Header-Content-Length {n} does not fit the {body_len}-byte body")
    return n


def _shape(name: str, value) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in value):
        raise BadRequestError(f"input {name!r}: 'shape' must be a list of non-negative integers, got {value!r}")
    return tuple(value)


def _params(where: str, value) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(f"{where}: 'parameters' must be an object, got {type(value).__name__}")
    return value


def parse_infer_request(body: bytes, header_length: str | None, *, max_array_bytes: int) -> InferRequest:
    """Decode an infer request body (JSON, or JSON + binary tensors)."""
    if not body:
        raise BadRequestError('empty request body; send {"inputs": [{"name", "shape", "datatype", "data"}]}')
    n = _header_length(header_length, len(body))
    head, binary = (body, b"") if n is None else (body[:n], memoryview(body)[n:])
    try:
        doc = json.loads(head)
    except RecursionError:
        raise BadRequestError("malformed JSON: nested too deeply") from None
    except ValueError as exc:
        hint = "" if n is not None else " (binary tensors need an Inference-Header-Content-Length header)"
        raise BadRequestError(f"malformed JSON: {exc}{hint}") from None
    if not isinstance(doc, dict):
        raise BadRequestError(f"the infer request must be a JSON object, got {type(doc).__name__}")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequestError("'inputs' must be a non-empty list of tensors {name, shape, datatype, data}")
    params = _params("request", doc.get("parameters"))
    arrays: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    budget = max_array_bytes
    for i, t in enumerate(inputs):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise BadRequestError(f"inputs[{i}] must be an object with a string 'name'")
        name = t["name"]
        if name in arrays:
            raise BadRequestError(f"input {name!r} is given twice")
        datatype = t.get("datatype")
        if datatype not in DATATYPES:
            raise BadRequestError(f"input {name!r}: datatype {datatype!r} is not supported; use one of "
                                  f"{', '.join(DATATYPES)}")
        dtype = DATATYPES[datatype]
        shape = _shape(name, t.get("shape"))
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if nbytes > budget:
            raise PayloadTooLargeError(f"input {name!r} of shape {list(shape)} {datatype} is {nbytes} bytes; "
                                       f"the inputs may total {max_array_bytes} (--max-body-bytes)")
        budget -= nbytes
        tparams = _params(f"input {name!r}", t.get("parameters"))
        size = tparams.get("binary_data_size")
        if size is not None:
            if "data" in t:
                raise BadRequestError(f"input {name!r} has both 'data' and binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or size != nbytes:
                raise BadRequestError(f"input {name!r}: binary_data_size is {size!r}, but shape {list(shape)} "
                                      f"{datatype} takes {nbytes} bytes")
            if offset + size > len(binary):
                raise BadRequestError(f"input {name!r}: the body has {len(binary) - offset} binary bytes "
                                      f"left, binary_data_size says {size}")
            arr = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
            arrays[name] = arr.reshape(shape).astype(dtype, copy=False)
            offset += size
        else:
            if "data" not in t:
                raise BadRequestError(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
            arrays[name] = _json_data(name, t["data"], dtype, datatype, shape, count)
        datatypes[name] = datatype
    if offset != len(binary):
        raise BadRequestError(f"the body carries {len(binary) - offset} binary bytes that no input claims")
    outputs = doc.get("outputs")
    wanted = None
    if outputs is not None:
        if not isinstance(outputs, list):
            raise BadRequestError("'outputs' must be a list of {name, parameters}")
        wanted = []
        for i, o in enumerate(outputs):
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise BadRequestError(f"outputs[{i}] must be an object with a string 'name'")
            binary_flag = _params(f"output {o['name']!r}", o.get("parameters")).get("binary_data")
            wanted.append((o["name"], None if binary_flag is None else bool(binary_flag)))
    rid = doc.get("id")
    return InferRequest(None if rid is None else str(rid), arrays, datatypes, wanted,
                        bool(params.get("binary_data_output", False)), params)


def _json_data(name: str, data, dtype: np.dtype, datatype: str, shape: tuple[int, ...], count: int) -> np.ndarray:
    if not isinstance(data, list) and count != 1:
        raise BadRequestError(f"input {name!r}: 'data' must be a list of {count} values (row-major)")
    try:
        arr = np.array(data)
    except (ValueError, TypeError, RecursionError, OverflowError):
        raise BadRequestError(f"input {name!r}: 'data' is not a rectangular list of numbers") from None
    kind = arr.dtype.kind
    if arr.size and kind not in "biuf":
        raise BadRequestError(f"input {name!r}: 'data' holds non-numbers ({arr.dtype.kind!r} values)")
    if arr.size != count:
        raise BadRequestError(f"input {name!r}: 'data' has {arr.size} values, shape {list(shape)} needs {count}")
    if datatype == "BOOL":
        if arr.size and kind != "b":
            raise BadRequestError(f"input {name!r}: BOOL data must be true/false")
    elif dtype.kind in "iu":
        if arr.size and kind in "fb":
            raise BadRequestError(f"input {name!r}: {datatype} data must be integers")
        if arr.size:
            info = np.iinfo(dtype)
            if arr.min() < info.min or arr.max() > info.max:
                raise BadRequestError(f"input {name!r}: values outside the {datatype} range")
    elif kind == "b":
        raise BadRequestError(f"input {name!r}: {datatype} data must be numbers, got booleans")
    return arr.astype(dtype).reshape(shape)


def encode_infer_response(model: str, version: str, request_id: str | None, names: Sequence[str],
                          outputs: Sequence[np.ndarray], binary: Sequence[bool]) -> tuple[bytes, dict[str, str]]:
    """(body, headers): the JSON header and, for outputs asked in binary, their bytes after it."""
    tensors, blobs = [], []
    for name, arr, as_binary in zip(names, outputs, binary):
        arr = np.asarray(arr)
        t: dict[str, Any] = {"name": name, "datatype": datatype_of(arr.dtype), "shape": list(arr.shape)}
        if as_binary:
            raw = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
            t["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            t["data"] = arr.ravel().tolist()
        tensors.append(t)
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": tensors}
    if request_id is not None:
        doc["id"] = request_id
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, {"content-type": "application/json"}
    return b"".join([head, *blobs]), {"content-type": "application/octet-stream",
                                      HEADER_LENGTH: str(len(head))}
