"""Loading untrusted ONNX files: protobuf only (nothing is unpickled), external data confined to the
model's directory (no ``..``, no absolute paths, no symlink escaping it, offset/length bounds-checked),
then ``onnx.checker`` full check and strict shape inference."""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors

from graphforge.errors import LoadError

__all__ = ["load_model_checked", "resolve_external_data"]

# packed two per byte
_FOUR_BIT = {getattr(onnx.TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(onnx.TensorProto, n)}


def _external_path(base_dir: str, location: str) -> str:
    if not location or os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location:
        raise LoadError(f"external data location {location!r} must be a relative path inside the model's "
                        "directory")
    parts = location.replace("\\", "/").split("/")
    if any(p in ("..", "") for p in parts):
        raise LoadError(f"external data location {location!r} may not contain '..' or empty components")
    base_real = os.path.realpath(base_dir)
    full = os.path.realpath(os.path.join(base_real, *parts))
    if os.path.commonpath([base_real, full]) != base_real:
        raise LoadError(f"external data location {location!r} resolves outside the model's directory "
                        "(symlink?)")
    if not os.path.isfile(full):
        raise LoadError(f"external data file {location!r} not found next to the model")
    return full


def _dtype_name(tensor) -> str:
    try:
        return onnx.TensorProto.DataType.Name(tensor.data_type)
    except ValueError:
        return f"data type {tensor.data_type}"


def _tensor_nbytes(tensor: onnx.TensorProto) -> int:
    """Bytes the tensor's dims and dtype call for, or a LoadError when external data cannot hold it."""
    if any(d < 0 for d in tensor.dims):
        raise LoadError(f"tensor {tensor.name!r}: negative dims {list(tensor.dims)}")
    try:
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except Exception:  # noqa: BLE001  (UNDEFINED or unknown code)
        raise LoadError(f"tensor {tensor.name!r}: external data of {_dtype_name(tensor)} is not supported") from None
    if tensor.data_type == onnx.TensorProto.STRING or np.dtype(np_dtype).kind == "O":
        raise LoadError(f"tensor {tensor.name!r}: string tensors cannot use external data")
    bits = 4 if tensor.data_type in _FOUR_BIT else 8 * np.dtype(np_dtype).itemsize
    count = 1
    for d in tensor.dims:
        count *= int(d)
    return (count * bits + 7) // 8


def resolve_external_data(model: onnx.ModelProto, base_dir: str | None) -> None:
    """Read every external tensor into ``raw_data`` after checking its location and byte range."""
    for tensor in _get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        try:
            info = ExternalDataInfo(tensor)
        except (TypeError, ValueError):
            raise LoadError(f"tensor {tensor.name!r}: malformed external data entries "
                            f"{[(e.key, e.value) for e in tensor.external_data]}") from None
        if base_dir is None:
            raise LoadError(f"tensor {tensor.name!r} uses external data, but the model was not given as a "
                            "path (pass the file path so its directory can be resolved)")
        path = _external_path(base_dir, info.location)
        size = os.path.getsize(path)
        need = _tensor_nbytes(tensor)
        try:
            offset = int(info.offset or 0)
            length = None if info.length in (None, "") else int(info.length)
        except (TypeError, ValueError):
            raise LoadError(f"tensor {tensor.name!r}: external data offset/length are not integers") from None
        if offset < 0 or offset > size:
            raise LoadError(f"tensor {tensor.name!r}: external data offset {offset} outside {info.location!r} "
                            f"({size} bytes)")
        # the tensor's own byte size decides how much is read: a declared length must equal it, and the
        # file must hold it; nothing is read before both are checked
        if length is not None and length != need:
            raise LoadError(f"tensor {tensor.name!r}: external data length {length} does not match the tensor's "
                            f"{need} bytes (dims {list(tensor.dims)}, {_dtype_name(tensor)})")
        length = need
        if offset + length > size:
            raise LoadError(f"tensor {tensor.name!r}: external data range [{offset}, {offset + length}) "
                            f"exceeds {info.location!r} ({size} bytes)")
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        tensor.raw_data = data
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def _first_non_utf8(message, path: str) -> str | None:
    """The path of the first string field that is not valid UTF-8, or None. protobuf hands such a
    proto2 ``string`` back as ``bytes`` (a flipped bit in a name), which no name handling expects."""
    from google.protobuf.descriptor import FieldDescriptor

    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            values = value if field.is_repeated else [value]
            if any(isinstance(v, bytes) for v in values):
                return f"{path}.{field.name}"
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            values = value if field.is_repeated else [value]
            for i, v in enumerate(values):
                found = _first_non_utf8(v, f"{path}.{field.name}[{i}]" if field.is_repeated else f"{path}.{field.name}")
                if found:
                    return found
    return None


def load_model_checked(model_or_path, *, check: bool = True) -> onnx.ModelProto:
    base_dir = None
    try:
        if isinstance(model_or_path, onnx.ModelProto):
            model = onnx.ModelProto()
            model.CopyFrom(model_or_path)
        elif isinstance(model_or_path, (bytes, bytearray)):
            model = onnx.load_model_from_string(bytes(model_or_path))
        elif isinstance(model_or_path, (str, os.PathLike)):
            path = os.fspath(model_or_path)
            if not os.path.isfile(path):
                raise LoadError(f"ONNX file {path!r} not found")
            base_dir = os.path.dirname(os.path.abspath(path))
            model = onnx.load(path, load_external_data=False)
        else:
            raise LoadError(f"from_onnx expects a path, bytes or onnx.ModelProto, got {type(model_or_path).__name__}")
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001  (protobuf DecodeError and friends)
        raise LoadError(f"cannot parse ONNX model: {exc}") from None
    bad = _first_non_utf8(model, "model")
    if bad:
        raise LoadError(f"ONNX model is malformed: the string field {bad} is not valid UTF-8")
    resolve_external_data(model, base_dir)
    if check:
        try:
            onnx.checker.check_model(model, full_check=True)
            model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        except Exception as exc:  # noqa: BLE001
            raise LoadError(f"ONNX model failed validation: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
    return model
