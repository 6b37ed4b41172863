"""onnxruntime sessions: :class:`OrtSession` (reusable) and ``run`` (the ``gf.run`` entry point).

``run`` keeps one session per graph (weakly keyed, so it dies with the graph) and per options:
repeated ``gf.run`` calls do not re-export. The session bakes the stored parameters in as
initializers; it is rebuilt when a stored array is replaced (``graph.params[name] = new``).
Parameters passed to ``gf.run(..., params=...)`` that differ from the stored ones are fed instead,
through a second session whose parameters are graph inputs. (In-place writes into a stored array
are not seen by a session built before them: assign a new array, or pass ``params=``.)

Providers: CUDA when ``onnxruntime.get_available_providers()`` has it (then CPU as fallback), else CPU.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from graphforge import dtypes as _dt
from graphforge.errors import BackendError, InputError
from graphforge.ir.graph import Graph

from .export import to_onnx

__all__ = ["OrtSession", "run", "default_providers"]

_LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
           "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
           "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
           "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
_BF16 = np.dtype(_dt.to_numpy_dtype("bfloat16"))
# dtypes onnxruntime's NumPy bridge does not know: passed as their bits (a same-size unsigned view)
# tagged with the ONNX type; 4- and 2-bit types travel packed (low bits first, ONNX's layout).
_BITS = {_BF16: (np.uint16, onnx.TensorProto.BFLOAT16)}
for _name, _code in (("float8e4m3fn", onnx.TensorProto.FLOAT8E4M3FN), ("float8e4m3fnuz", onnx.TensorProto.FLOAT8E4M3FNUZ),
                     ("float8e5m2", onnx.TensorProto.FLOAT8E5M2), ("float8e5m2fnuz", onnx.TensorProto.FLOAT8E5M2FNUZ),
                     ("float8e8m0", onnx.TensorProto.FLOAT8E8M0)):
    _BITS[np.dtype(_dt.to_numpy_dtype(_name))] = (np.uint8, _code)
_CODES = {"int4": onnx.TensorProto.INT4, "uint4": onnx.TensorProto.UINT4, "float4e2m1": onnx.TensorProto.FLOAT4E2M1,
          "int2": onnx.TensorProto.INT2, "uint2": onnx.TensorProto.UINT2}
# packed dtype -> (ONNX type, bits per element, sign-extend the field when unpacking)
_PACKED = {np.dtype(_dt.to_numpy_dtype(n)): (code, _dt.PACKED_BITS[n], n.startswith("int"))
           for n, code in _CODES.items()}
_BITS.update({dt: (np.uint8, code) for dt, (code, _, _) in _PACKED.items()})
_BITS_BY_TYPE = {f"tensor({onnx.helper.tensor_dtype_to_string(code).split('.')[-1].lower()})": dt
                 for dt, (_, code) in _BITS.items()}


def default_providers() -> list[str]:
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OrtSession:
    """An onnxruntime session for a Graph (exported here) or an ONNX model (proto, bytes or path).

    ``optimization``: ``"all"`` (default), ``"extended"``, ``"basic"`` or ``"disable"``.
    A Graph is exported with onnxruntime's fused ``com.microsoft`` kernels where they apply
    (``contrib_ops=True``, the default here; ``contrib_ops=False`` for the portable file).
    ``intra_op_threads`` (0 = onnxruntime's default) and ``session_config`` (onnxruntime session
    config entries, e.g. ``{"session.intra_op.allow_spinning": "0"}`` for a server whose event loop
    shares the cores) tune the session.
    ``run(inputs)`` takes a dict name -> array, a sequence in input order, or one array, and returns
    the outputs as a list of NumPy arrays (bfloat16 travels as ml_dtypes.bfloat16)."""

    def __init__(self, graph_or_proto, providers: Sequence[str] | None = None, optimization: str = "all", *,
                 opset: int | None = None, params_as_inputs=False, intra_op_threads: int = 0,
                 session_config: Mapping[str, str] | None = None, **export_options):
        if optimization not in _LEVELS:
            raise InputError(f"unknown optimization level {optimization!r}; choose one of {', '.join(_LEVELS)}")
        self.graph = graph_or_proto if isinstance(graph_or_proto, Graph) else None
        if self.graph is not None:
            # readable node names in memory (onnxruntime's errors name the node): the compact default
            # of quantized graphs is about file size
            export_options.setdefault("provenance", True)
            # the runtime is known to be onnxruntime here: its fused kernels (contrib.py) where they
            # apply — measured faster than the portable file (docs/serving.md §11); a file written
            # for any runtime (save_onnx, graphforge compile) stays portable unless asked
            export_options.setdefault("contrib_ops", True)
            self.proto = to_onnx(self.graph, opset, params_as_inputs=params_as_inputs, **export_options)
            payload = self.proto.SerializeToString()
        elif isinstance(graph_or_proto, onnx.ModelProto):
            self.proto = graph_or_proto
            payload = graph_or_proto.SerializeToString()
        elif isinstance(graph_or_proto, (bytes, bytearray)):
            self.proto, payload = None, bytes(graph_or_proto)
        elif isinstance(graph_or_proto, (str, os.PathLike)):
            self.proto, payload = None, os.fspath(graph_or_proto)
        else:
            raise InputError(f"OrtSession takes a Graph, an onnx.ModelProto, bytes or a path, got "
                             f"{type(graph_or_proto).__name__}")
        options = ort.SessionOptions()
        options.graph_optimization_level = _LEVELS[optimization]
        options.log_severity_level = 3
        if intra_op_threads:
            options.intra_op_num_threads = int(intra_op_threads)
        for key, value in (session_config or {}).items():
            options.add_session_config_entry(str(key), str(value))
        self.providers = list(providers) if providers else default_providers()
        try:
            self._session = ort.InferenceSession(payload, options, providers=self.providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime cannot load the model: {exc}") from exc
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]

    def run(self, inputs: Any) -> list[np.ndarray]:
        feed = self._feed(inputs)
        try:
            if any(a.dtype in _BITS for a in feed.values()) or self._has_bf16_outputs():
                return self._run_ort_values(feed)
            return [np.asarray(o) for o in self._session.run(None, feed)]
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"onnxruntime failed: {type(exc).__name__}: {exc}") from exc

    __call__ = run

    def _feed(self, inputs) -> dict[str, np.ndarray]:
        if isinstance(inputs, Mapping):
            missing = [n for n in self.input_names if n not in inputs]
            if missing:
                raise InputError(f"the ONNX model takes inputs {self.input_names}; missing {missing}")
            return {n: np.asarray(inputs[n]) for n in self.input_names}
        if isinstance(inputs, np.ndarray) or np.isscalar(inputs):
            inputs = [inputs]
        inputs = list(inputs)
        if len(inputs) != len(self.input_names):
            raise InputError(f"the ONNX model takes {len(self.input_names)} inputs ({', '.join(self.input_names)}), "
                             f"got {len(inputs)}")
        return {n: np.asarray(a) for n, a in zip(self.input_names, inputs)}

    def _has_bf16_outputs(self) -> bool:
        return any(o.type in _BITS_BY_TYPE for o in self._session.get_outputs())

    def _run_ort_values(self, feed):
        # onnxruntime's NumPy bridge has no bfloat16: pass the bits as uint16 tagged with the ONNX type
        values = {}
        for name, a in feed.items():
            if a.dtype in _PACKED:
                values[name] = _packed_ortvalue(a)
            elif a.dtype in _BITS:
                carrier, code = _BITS[a.dtype]
                values[name] = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
                    np.asarray(a, order="C").view(carrier), code)
            else:
                values[name] = ort.OrtValue.ortvalue_from_numpy(np.asarray(a, order="C"))
        outs = self._session.run_with_ort_values(self.output_names, values)
        result = []
        for meta, o in zip(self._session.get_outputs(), outs):
            if meta.type in _BITS_BY_TYPE:
                result.append(_bits_from_ortvalue(o, _BITS_BY_TYPE[meta.type]))
            else:
                result.append(np.asarray(o.numpy()))
        return result


def _packed_ortvalue(a: np.ndarray):
    """A packed (4- or 2-bit) OrtValue holding ``a``'s values."""
    import ctypes

    code, bits, _ = _PACKED[a.dtype]
    per = 8 // bits
    fields = np.asarray(a, order="C").reshape(-1).view(np.uint8) & np.uint8((1 << bits) - 1)
    fields = np.concatenate([fields, np.zeros((-fields.size) % per, np.uint8)]).reshape(-1, per)
    packed = np.zeros(fields.shape[0], np.uint8)
    for j in range(per):
        packed |= fields[:, j] << np.uint8(j * bits)
    value = ort.OrtValue.ortvalue_from_shape_and_type(list(a.shape), code)
    if packed.nbytes:
        ctypes.memmove(value.data_ptr(), packed.ctypes.data, packed.nbytes)
    return value


def _bits_from_ortvalue(value, dtype: np.dtype) -> np.ndarray:
    """Copy a (CPU) bfloat16 / float8 / packed OrtValue's bytes into an ml_dtypes array of ``dtype``."""
    import ctypes

    shape = tuple(value.shape())
    if dtype in _PACKED:
        _, bits, signed = _PACKED[dtype]
        per = 8 // bits
        count = int(np.prod(shape, dtype=np.int64))
        packed = np.empty(-(-count // per), dtype=np.uint8)
        if packed.nbytes:
            ctypes.memmove(packed.ctypes.data, value.data_ptr(), packed.nbytes)
        mask = np.uint8((1 << bits) - 1)
        fields = np.stack([(packed >> np.uint8(j * bits)) & mask for j in range(per)], axis=1).reshape(-1)[:count]
        if signed:  # sign-extend the field
            half = np.int8(1 << (bits - 1))
            return ((fields.astype(np.int8) ^ half) - half).astype(dtype).reshape(shape)
        return fields.view(dtype).reshape(shape)  # ml_dtypes keeps the field's code in a byte
    out = np.empty(shape, dtype=_BITS[dtype][0])
    if out.nbytes:
        ctypes.memmove(out.ctypes.data, value.data_ptr(), out.nbytes)
    return out.view(dtype)


# ---- gf.run entry point ------------------------------------------------------------------------------

def _fingerprint(graph: Graph) -> tuple:
    return (len(graph.nodes), tuple(id(n) for n in graph.nodes), tuple(id(o) for o in graph.outputs),
            tuple(id(v) for v in graph.inputs), tuple(graph.param_values))


def _session_for(graph: Graph, key: tuple, make, snapshot: dict | None = None):
    per_graph = graph.compiled_cache("onnxruntime")  # freed with the graph
    entry = per_graph.get(key)
    if entry is not None and snapshot is not None:
        if any(entry[1].get(n) is not a for n, a in snapshot.items()):
            entry = None
    if entry is None:
        if len(per_graph) > 16:
            per_graph.clear()
        entry = (make(), snapshot or {})
        per_graph[key] = entry
    return entry[0]


def run(graph: Graph, arrays, env: Mapping[str, int], params: Mapping[str, np.ndarray], **options) -> list[np.ndarray]:
    """``gf.run(graph, inputs, backend="onnxruntime", params=None, optimization=, providers=, opset=,
    native_ops=)``."""
    optimization = options.pop("optimization", "all")
    providers = options.pop("providers", None)
    opset = options.pop("opset", None)
    native = options.pop("native_ops", None)
    if options:
        raise InputError(f"unknown onnxruntime option(s) {', '.join(sorted(options))}; "
                         "use optimization=, providers=, opset=, native_ops=")
    native_key = native if native is None or isinstance(native, bool) else tuple(sorted(map(str, native)))
    stored = graph.params
    fed = sorted(n for n in graph.param_values if params[n] is not stored.get(n))
    base = (_fingerprint(graph), optimization, tuple(providers or ()), opset, native_key)
    names = [v.name for v in graph.inputs]
    if not fed:
        snapshot = {n: stored[n] for n in graph.param_values}
        session = _session_for(graph, base + ("baked",), lambda: OrtSession(
            graph, providers, optimization, opset=opset, native_ops=native), snapshot)
        return session.run(dict(zip(names, arrays)))
    session = _session_for(graph, base + ("fed",), lambda: OrtSession(
        graph, providers, optimization, opset=opset, params_as_inputs=True, native_ops=native))
    feed = dict(zip(names, arrays))
    feed.update({n: params[n] for n in graph.param_values})
    return session.run(feed)
