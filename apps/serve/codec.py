"""Request and response bodies of ``POST /v1/predict``: JSON, ``.npy`` and ``.npz``.

Decoding never trusts the client: ``.npy`` headers are checked against the bytes that follow
(no allocation from a forged shape), object/pickled arrays are refused, ``.npz`` members are
bounded by their declared and actual sizes, JSON must be numbers in rectangular nested lists.
"""
from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError

__all__ = ["JSON", "NPY", "NPZ", "MEDIA_TYPES", "DecodedRequest", "decode_request",
           "encode_response", "response_format", "read_npy"]

JSON, NPY, NPZ = "json", "npy", "npz"
MEDIA_TYPES = {JSON: "application/json", NPY: "application/x-npy", NPZ: "application/x-npz"}
_BY_MEDIA = {
    "application/json": JSON, "text/json": JSON,
    "application/x-npy": NPY, "application/npy": NPY, "application/vnd.numpy.npy": NPY,
    "application/x-npz": NPZ, "application/npz": NPZ, "application/zip": NPZ,
}
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class DecodedRequest:
    """Arrays by input name (``None``: the model's only input) and the body's format."""

    arrays: dict[str | None, np.ndarray]
    format: str


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _sniff(body: bytes) -> str:
    if body.startswith(_NPY_MAGIC):
        return NPY
    if body.startswith(_ZIP_MAGIC):
        return NPZ
    return JSON


def decode_request(body: bytes, content_type: str | None, *, max_array_bytes: int) -> DecodedRequest:
    """Parse a predict body; ``max_array_bytes`` bounds what binary bodies may decode to."""
    if not body:
        raise BadRequestError("empty request body; send JSON {\"inputs\": {...}} or an .npy/.npz array")
    media = _media(content_type)
    if media in ("", "application/octet-stream"):
        fmt = _sniff(body)
    elif media in _BY_MEDIA:
        fmt = _BY_MEDIA[media]
    else:
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {media!r}; use application/json, application/x-npy or "
            "application/x-npz")
    if fmt == JSON:
        return DecodedRequest(_decode_json(body), JSON)
    if fmt == NPY:
        return DecodedRequest({None: read_npy(body, "request body", max_array_bytes)}, NPY)
    return DecodedRequest(_decode_npz(body, max_array_bytes), NPZ)


# -- JSON ---------------------------------------------------------------------------------------
def _decode_json(body: bytes) -> dict[str | None, np.ndarray]:
    try:
        payload = json.loads(body)
    except RecursionError:
        raise BadRequestError("malformed JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer over Python's digit limit
        raise BadRequestError(f"malformed JSON: {exc}") from None
    if isinstance(payload, dict):
        if "inputs" not in payload:
            raise BadRequestError('JSON body needs an "inputs" key: {"inputs": {"x": [[...]]}} '
                                  f"(got keys {sorted(payload)[:8]})")
        extra = sorted(set(payload) - {"inputs"})
        if extra:
            raise BadRequestError(f"unexpected JSON keys {extra}; only \"inputs\" is read")
        inputs = payload["inputs"]
        if isinstance(inputs, dict):
            if not inputs:
                raise BadRequestError('"inputs" is empty')
            return {str(k): _json_array(str(k), v) for k, v in inputs.items()}
        if isinstance(inputs, list):
            return {None: _json_array(None, inputs)}
        raise BadRequestError('"inputs" must be an object mapping input names to nested lists, '
                              f"or a list for a single-input model (got {type(inputs).__name__})")
    if isinstance(payload, list):
        return {None: _json_array(None, payload)}
    raise BadRequestError('JSON body must be {"inputs": {...}} or a nested list '
                          f"(got {type(payload).__name__})")


def _json_array(name: str | None, value) -> np.ndarray:
    label = "input" if name is None else f"input {name!r}"
    if isinstance(value, (str, dict)) or value is None:
        raise BadRequestError(f"{label} must be a number or nested lists of numbers, "
                              f"got {type(value).__name__}")
    try:
        arr = np.array(value)
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        msg = str(exc)
        if "maximum number of dimension" in msg:
            raise BadRequestError(f"{label} is nested too deeply (numpy allows at most 64 dimensions)") from None
        if "inhomogeneous" in msg or "sequence" in msg:
            raise BadRequestError(f"{label} is a ragged nested list (rows of different lengths)") from None
        raise BadRequestError(f"{label} cannot be read as an array: {msg.splitlines()[0] if msg else exc}") from None
    if arr.dtype.kind not in "biuf":
        what = {"U": "strings", "S": "strings", "O": "nulls, objects or integers out of range"}.get(
            arr.dtype.kind, f"{arr.dtype} values")
        raise BadRequestError(f"{label} has non-numeric data ({what})")
    return arr


# -- npy / npz ----------------------------------------------------------------------------------
def read_npy(data: bytes | memoryview, what: str, max_array_bytes: int) -> np.ndarray:
    """Strictly parse ``.npy`` bytes: no pickles, no objects, header shape == payload size."""
    from numpy.lib import format as npformat

    buf = io.BytesIO(data)
    try:
        version = npformat.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(buf)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as exc:  # numpy raises ValueError, SyntaxError, TokenError, ... on a bad header
        raise BadRequestError(f"{what} is not a valid .npy array: {exc}") from None
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise BadRequestError(f"{what} has dtype {dtype}; only plain numeric and bool arrays are accepted")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > max_array_bytes:
        raise PayloadTooLargeError(f"{what} declares shape {list(shape)} ({nbytes} bytes), more than "
                                   f"the {max_array_bytes}-byte limit")
    offset = buf.tell()
    if len(data) - offset != nbytes:
        raise BadRequestError(f"{what} declares shape {list(shape)} {dtype} ({nbytes} bytes) but carries "
                              f"{len(data) - offset} bytes of data")
    arr = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
    arr = arr.reshape(shape, order="F" if fortran else "C")
    if not dtype.isnative:
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


def _decode_npz(body: bytes, max_array_bytes: int) -> dict[str | None, np.ndarray]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(body))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise BadRequestError(f"request body is not a valid .npz archive: {exc}") from None
    if not infos:
        raise BadRequestError("the .npz archive is empty")
    budget = max_array_bytes
    out: dict[str | None, np.ndarray] = {}
    with zf:
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name in out:
                raise BadRequestError(f"the .npz archive holds {name!r} twice")
            if info.file_size > budget:
                raise PayloadTooLargeError(f"the .npz member {name!r} decompresses to {info.file_size} bytes, "
                                           f"more than the {max_array_bytes}-byte limit for all arrays")
            try:
                with zf.open(info) as member:
                    data = member.read(budget + 1)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, EOFError, OSError) as exc:
                raise BadRequestError(f"cannot read .npz member {name!r}: {exc}") from None
            if len(data) > budget:
                raise PayloadTooLargeError(f"the .npz arrays exceed the {max_array_bytes}-byte limit")
            budget -= len(data)
            out[name] = read_npy(data, f".npz member {name!r}", max_array_bytes)
    return out


# -- responses ----------------------------------------------------------------------------------
def response_format(accept: str | None, request_format: str, n_outputs: int) -> str:
    """The reply format: the first JSON/npy/npz type named in ``Accept``, else the request's.

    An ``.npy`` reply for a model with several outputs becomes ``.npz``.
    """
    fmt = request_format
    for part in (accept or "").split(","):
        media = _media(part)
        if media in _BY_MEDIA:
            fmt = _BY_MEDIA[media]
            break
    if fmt == NPY and n_outputs != 1:
        fmt = NPZ
    return fmt


def encode_response(names: Sequence[str], outputs: Sequence[np.ndarray], fmt: str) -> tuple[bytes, str]:
    """(body, media type). JSON floats that are not finite are written as NaN/Infinity tokens."""
    if fmt == JSON:
        doc = {"outputs": {n: np.asarray(o).tolist() for n, o in zip(names, outputs)}}
        return json.dumps(doc, separators=(",", ":")).encode(), MEDIA_TYPES[JSON]
    buf = io.BytesIO()
    if fmt == NPY:
        np.save(buf, np.ascontiguousarray(outputs[0]), allow_pickle=False)
    else:  # by hand, not np.savez: an output may be called "file" or "allow_pickle"
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            for n, o in zip(names, outputs):
                with zf.open(f"{n}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(o), allow_pickle=False)
    return buf.getvalue(), MEDIA_TYPES[fmt]
