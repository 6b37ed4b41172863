"""Graph → checked ``onnx.ModelProto`` (``to_onnx``) and atomic files (``save_onnx``).

Inputs keep their names and symbolic dims become ``dim_param``s, so one file serves every batch
size; parameters, buffers and consts become initializers (or graph inputs with
``params_as_inputs=True``, which is how ``gf.run(..., params=...)`` feeds overrides). Every ONNX node
is named ``<scope>/<OpType>_<k>`` and its ``doc_string`` is the graphforge node's provenance
(``encoder.layers.0.attn.q_proj @ model.py:31``); the model's ``metadata_props`` carry the
graphforge version. ``provenance="metadata"`` (the default for quantized graphs) keeps the
provenance in one compact ``metadata_props`` table instead, ``False`` drops it (``provenance.py``).
Each model passes ``onnx.checker.check_model(full_check=True)`` and strict shape inference before it
is returned or written.

Before lowering, the ``decompose`` pass (``passes/decompose.py``) replaces each composite op this
lowering table does not take as it is (``LOWERINGS.can_lower(node, emitter)``: no lowering, or one
registered with a ``when=`` condition the node fails, e.g. LayerNormalization without a kernel or
without a static scale shape) by its registry decomposition, on a copy of the graph.

Native composite ops (LayerNormalization, Gelu, Attention) follow one rule, ``native_ops=``: by
default (None) a composite is emitted as its native ONNX op when the opset defines it *and* the
installed onnxruntime has a kernel for it at that opset (probed once per op and opset, see
``kernels.py``: onnxruntime 1.32 runs Attention natively at opsets 23-24 but expands it into ~59
nodes at 25+), else as graphforge's decomposition. ``native_ops=True`` emits every native op the
opset defines (for another runtime), ``False`` none, a set of op names just those.

The graph stays tight: a graph output is the producing node's own output (an Identity only for an
output that is a graph input or an initializer, or one value returned under a second name), and
nodes whose results nothing uses are dropped, with the constants only they read.
"""
from __future__ import annotations

import functools
import os
import shutil
import tempfile

import numpy as np
import onnx
from onnx import helper

from graphforge.errors import ExportError, GraphforgeError, UnsupportedOpError
from graphforge.ir.gcpause import gc_paused
from graphforge.ir.graph import Graph
from graphforge.ops import registry
from graphforge.passes.decompose import decompose

from . import creation, elementwise, linalg, nn_ops, reduction, shape_ops  # noqa: F401  (fill LOWERINGS)
from . import control_flow  # noqa: F401  (cond/scan/while_loop → If/Scan/Loop)
from . import random  # noqa: F401,E402  (random_uniform)
from . import math_ops  # noqa: F401  (fill LOWERINGS)
from . import quantize  # noqa: F401,E402  (quantized ops)
from . import contrib  # noqa: E402  (onnxruntime's com.microsoft kernels, on request)
from . import barrier as _barrier  # noqa: E402,F401  (optimization_barrier)
from . import contraction  # noqa: F401  (einsum)
from . import selection  # noqa: F401  (topk)
from . import data_dependent  # noqa: F401  (nonzero, compress, unique, non_max_suppression)
from .lower import DTYPE_GENERIC, HALF, LOWERINGS, Emitter, NotExpressible, onnx_dtype, tensor_proto
from .provenance import apply_provenance, check_provenance

__all__ = ["to_onnx", "save_onnx", "MIN_OPSET", "max_opset", "default_opset", "check_opset", "missing_lowerings"]

MIN_OPSET = 17
_PROTOBUF_LIMIT = 2 ** 31 - 1


def missing_lowerings() -> list[str]:
    """Registry ops with neither an ONNX lowering nor a decomposition to fall back on."""
    return sorted(n for n, d in registry.all_ops().items() if n not in LOWERINGS and d.decompose is None)


@functools.lru_cache(maxsize=1)
def max_opset() -> int:
    """The highest ai.onnx opset both onnx (checker) and the installed onnxruntime accept.

    Found by loading a one-node model in onnxruntime at each opset from onnx's newest down; without
    onnxruntime it is onnx's newest."""
    top = onnx.defs.onnx_opset_version()
    try:
        import onnxruntime as ort
    except ImportError:
        return top
    for opset in range(top, MIN_OPSET - 1, -1):
        x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  ir_version=_ir_version(opset))
        options = ort.SessionOptions()
        options.log_severity_level = 4
        try:
            ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - "opset not supported" is the answer we are looking for
            continue
        return opset
    return MIN_OPSET


def default_opset() -> int:
    return max_opset()


def check_opset(opset) -> int:
    """``opset`` itself when it is an int in [17, max_opset()]; ExportError otherwise."""
    top = max_opset()
    if opset is None:
        return top
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= int(opset) <= top:
        raise ExportError(f"unsupported ONNX opset {opset!r}: graphforge exports opsets {MIN_OPSET} to {top} "
                          "(the newest one the installed onnx and onnxruntime both support)",
                          hint=f"pass opset=None for {top}, or an int between {MIN_OPSET} and {top}")
    return int(opset)


def _ir_version(opset: int) -> int:
    return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])


# ---- lowering driver -------------------------------------------------------------------------------

def _where(node) -> str:
    return f"{node.op} at {node.provenance() or '<no source location>'}"


class _Driver:
    def __init__(self, ctx: Emitter, refused=()):
        self.ctx = ctx
        self.unsupported: list[tuple] = []
        self.refused = {id(node): why for node, why in refused}  # decompositions that did not apply
        self.envs: list[dict] = []  # value id -> ONNX name, one per block being lowered (innermost last)
        ctx.driver = self  # control-flow lowerings lower their regions' nodes through it

    def lower_nodes(self, nodes, env: dict) -> None:
        self.envs.append(env)
        try:
            for node in nodes:
                args = [env[id(v)] for v in node.inputs]
                outs = self.lower_node(node, args)
                for v, name in zip(node.outputs, outs):
                    env[id(v)] = name
        finally:
            self.envs.pop()

    def name_of(self, value) -> str | None:
        """The ONNX name already given to ``value`` in the blocks being lowered (None if none yet):
        lets a lowering read past its operands, e.g. the input of the projection feeding a scan."""
        for env in reversed(self.envs):
            if id(value) in env:
                return env[id(value)]
        return None

    def lower_node(self, node, args) -> list[str]:
        ctx = self.ctx
        if not LOWERINGS.can_lower(node, ctx):
            why = "no ONNX lowering" if node.op not in LOWERINGS else "its ONNX lowering does not apply here"
            return self._unsupported(node, self.refused.get(id(node)) or
                                     (why + ("" if _decomposable(node.op) else " and no decomposition")))
        fn = LOWERINGS[node.op]
        special = contrib.contrib_lowering(node) if getattr(ctx, "contrib_ops", False) else None
        in_t = [v.type for v in node.inputs]
        out_t = [v.type for v in node.outputs]
        half = node.op not in DTYPE_GENERIC and any(t.dtype in HALF for t in in_t + out_t)
        saved = ctx.enter(node, in_t, out_t)
        try:
            if half:  # half types compute in float32 (like the reference); onnxruntime lacks most kernels
                args = [ctx.cast(a, "float32") if t.dtype in HALF else a for a, t in zip(args, in_t)]
                ctx.in_types = [t.with_dtype("float32") if t.dtype in HALF else t for t in in_t]
                ctx.out_types = [t.with_dtype("float32") if t.dtype in HALF else t for t in out_t]
            ctx.args = list(args)
            try:
                outs = special(ctx, args, node.attrs) if special is not None else None
                outs = list(fn(ctx, args, node.attrs)) if outs is None else list(outs)
            except NotExpressible as exc:
                return self._unsupported(node, str(exc))
            except GraphforgeError:
                raise
            except Exception as exc:  # noqa: BLE001 - name the node that failed
                raise ExportError(f"ONNX lowering of {node.op} failed: {type(exc).__name__}: {exc}",
                                  scope=node.scope, op=node.op, loc=node.loc) from exc
            if half:
                # (float8: a plain conversion, as the reference's astype; not Cast's default saturation)
                outs = [ctx.cast(o, t.dtype, saturate=False) if t.dtype in HALF else o for o, t in zip(outs, out_t)]
        finally:
            ctx.leave(saved)
        if len(outs) != len(node.outputs):
            raise ExportError(f"ONNX lowering of {node.op} gave {len(outs)} results for {len(node.outputs)} outputs",
                              scope=node.scope, op=node.op, loc=node.loc)
        return outs

    def _unsupported(self, node, why: str) -> list[str]:
        self.unsupported.append((node, why))
        return [self.ctx.fresh("unsupported") for _ in node.outputs]


def decompose_for(graph: Graph, ctx: Emitter) -> tuple[Graph, list]:
    """``graph`` with the composites this export cannot lower as they are decomposed (a copy; the
    graph itself when there are none), and the ``(node, reason)`` of decompositions that did not apply."""
    def keep(node) -> bool:
        return LOWERINGS.can_lower(node, ctx)

    if all(keep(node) or not _decomposable(node.op) for node in graph.walk()):
        return graph, []
    refused: list = []
    work, _ = decompose(graph.copy(), keep, refused=refused)
    return work, refused


def _decomposable(op: str) -> bool:
    opdef = registry.lookup_op(op)
    return opdef is not None and opdef.decompose is not None


def _value_info(name: str, t) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, onnx_dtype(t.dtype), [d for d in t.shape])


def build_model(graph: Graph, opset: int, *, name: str | None = None, params_as_inputs=False,
                native_ops=None, contrib_ops: bool = False) -> onnx.ModelProto:
    """The unchecked ModelProto for ``graph`` (``to_onnx`` checks it)."""
    if contrib_ops and not params_as_inputs:
        # an onnxruntime-only inference file: post-norm residual biases move into the norms (one
        # elementwise kernel fewer per block; passes/fold_residual_bias.py), on a copy
        from graphforge.passes.fold_residual_bias import fold_residual_bias, has_residual_bias

        if has_residual_bias(graph):
            graph = fold_residual_bias(graph.copy())[0]
    # the lowering conditions ask an Emitter for the opset and the native-op policy only
    graph, refused = decompose_for(graph, Emitter(opset, (), native_ops))
    params = list(graph.param_values.items())
    fed = set(n for n, _ in params) if params_as_inputs is True else set(params_as_inputs or ())
    reserved = [v.name for v in graph.inputs] + [n for n, _ in params]
    ctx = Emitter(opset, reserved, native_ops)
    ctx.contrib_ops = bool(contrib_ops)  # onnxruntime's com.microsoft kernels (contrib.py)
    ctx.bind_symbols(graph.inputs)
    env: dict[int, str] = {id(v): v.name for v in graph.inputs}
    initializers, inputs = [], [_value_info(v.name, v.type) for v in graph.inputs]
    for pname, value in params:
        env[id(value)] = pname
        if pname in fed:
            inputs.append(_value_info(pname, value.type))
        else:
            if pname not in graph.params:
                raise ExportError(f"parameter {pname!r} has no value to store in the ONNX file",
                                  hint="load the weights first (gf.load_params) or pass params_as_inputs=True")
            initializers.append(tensor_proto(graph.params[pname], pname, value.type.dtype))
            ctx.stored_params[pname] = (graph.params[pname], value.type.dtype)
    driver = _Driver(ctx, refused)
    driver.lower_nodes(graph.nodes, env)
    if driver.unsupported:
        lines = [f"  {_where(n)}: {why}" for n, why in driver.unsupported]
        raise UnsupportedOpError(f"{len(lines)} node(s) cannot be expressed in ONNX opset {opset}:\n"
                                 + "\n".join(lines), ops=[n.op for n, _ in driver.unsupported],
                                 hint=f"try a newer opset (up to {max_opset()}) or rewrite those ops")
    results = [env[id(value)] for value in graph.outputs]
    merged, same = _merge_duplicates(ctx.nodes)
    results = [same.get(r, r) for r in results]
    nodes, consts = _live(merged, ctx.initializers, results)
    # a parameter whose only readers took its pre-transposed copy is not stored twice
    if ctx.transposed_params or ctx.relaid_params:
        read = {name for n in nodes for name in control_flow.reads(n)}  # a loop body may read the original
        replaced = set(ctx.transposed_params) | ctx.relaid_params
        initializers = [t for t in initializers if t.name not in replaced or t.name in read]
    outputs, renamed = [], {}
    for i, (value, src, oname) in enumerate(zip(graph.outputs, results, graph.output_names)):
        out = ctx.reserve(oname or f"output{i}")
        if src not in renamed and ctx.producer(src) is not None:
            renamed[src] = out  # the producer writes the graph output itself
        else:  # a graph input, an initializer, or a value already returned under another name
            ctx.scope, ctx.loc = "", ""
            ctx.op("Identity", [src], outputs=[out])
            nodes.append(ctx.nodes[-1])
        outputs.append(_value_info(out, value.type))
    _rename(nodes, renamed)
    onnx_graph = helper.make_graph(nodes, name or graph.name, inputs, outputs, initializers + consts,
                                   doc_string=f"exported by graphforge from graph {graph.name!r}")
    from graphforge.version import __version__

    imports = [helper.make_opsetid("", opset)]
    if any(n.domain == contrib.DOMAIN for n in nodes):
        imports.append(helper.make_opsetid(contrib.DOMAIN, 1))
    model = helper.make_model(onnx_graph, opset_imports=imports,
                              ir_version=_ir_version(opset), producer_name="graphforge",
                              producer_version=__version__)
    helper.set_model_props(model, {"graphforge_version": __version__, "graphforge_graph": graph.name})
    return model


def _live(nodes, consts, results):
    """The nodes (in order) and emitter constants that the ``results`` depend on."""
    need, kept = set(results), []
    for node in reversed(nodes):
        if not need.isdisjoint(node.output):
            kept.append(node)
            need.update(control_flow.reads(node))  # a subgraph reads outer names too
    return kept[::-1], [c for c in consts if c.name in need]


# ops whose every run may give a different result: two equal nodes are two draws, never one
_NONDETERMINISTIC = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                               "Multinomial", "Bernoulli", "Dropout"})


def _merge_duplicates(nodes):
    """The top-level nodes with exact duplicates merged (same op, domain, inputs and attributes:
    the first one's outputs stand for the others'), and ``{dropped output: kept output}``.

    Lowerings emit per IR node, so two nodes lowered alone can ask for the same helper value (a
    dropout's element counter, a Shape of the same input, a Cast of the same mask); the IR's CSE
    cannot see those. Nodes with subgraphs and random ops are never merged."""
    same: dict[str, str] = {}
    seen: dict[tuple, onnx.NodeProto] = {}
    kept = []
    for node in nodes:
        if same and not same.keys().isdisjoint(node.input):
            for i, name in enumerate(node.input):
                if name in same:
                    node.input[i] = same[name]
        if node.op_type in _NONDETERMINISTIC or control_flow.subgraphs(node):
            kept.append(node)
            continue
        key = (node.domain, node.op_type, tuple(node.input), len(node.output),
               tuple(sorted((a.name, a.SerializeToString()) for a in node.attribute)))
        first = seen.get(key)
        if first is None:
            seen[key] = node
            kept.append(node)
            continue
        same.update(zip(node.output, first.output))
    if same:
        for node in kept:  # a subgraph may read a merged value by name
            for g in control_flow.subgraphs(node):
                _rename(g.node, same)
    return kept, same


def _rename(nodes, renamed: dict[str, str]) -> None:
    """Apply ``renamed`` (old tensor name -> new) to every node's inputs and outputs in one sweep
    (a gradient graph has an output per parameter; one sweep each would be quadratic)."""
    if not renamed:
        return
    names = renamed.keys()
    for node in nodes:
        for field in (node.input, node.output):
            if not names.isdisjoint(field):  # (a set test in C: most nodes touch no renamed name)
                for i, n in enumerate(field):
                    if n in renamed:
                        field[i] = renamed[n]
        for graph in control_flow.subgraphs(node):  # a subgraph may read a renamed value by name
            _rename(graph.node, renamed)


def validate(model: onnx.ModelProto) -> None:
    """onnx.checker with ``full_check``: structure, then strict, type-checking shape inference (the
    checker runs ``InferShapes`` with check_type and strict mode itself, so inference is not run a
    second time); ExportError with their message."""
    try:
        if model.ByteSize() < _PROTOBUF_LIMIT:
            onnx.checker.check_model(model, full_check=True)
            return
        with tempfile.TemporaryDirectory(prefix="gf-onnx-check-") as tmp:
            path = os.path.join(tmp, "model.onnx")
            big = onnx.ModelProto()
            big.CopyFrom(model)
            onnx.save_model(big, path, save_as_external_data=True, location="model.onnx.data")
            onnx.checker.check_model(path, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the exported ONNX model does not pass onnx's checks: {exc}") from exc


def to_onnx(graph: Graph, opset: int | None = None, *, external_data_threshold: int = 2 ** 31,
            name: str | None = None, params_as_inputs=False, native_ops=None,
            contrib_ops: bool = False, provenance=None) -> onnx.ModelProto:
    """Lower ``graph`` to a checked ``onnx.ModelProto`` at ``opset`` (default: :func:`max_opset`).
    ``contrib_ops=True``: for onnxruntime only, emit its ``com.microsoft`` fused kernels where they
    apply (``contrib.py``); the default is portable, standard ONNX.

    ``external_data_threshold`` matters to :func:`save_onnx` only (an in-memory proto holds all
    its data); it is accepted here so both take the same options. ``params_as_inputs`` (True or a
    set of names) makes those parameters graph inputs instead of initializers. ``native_ops``: which
    composites (LayerNormalization, Gelu, Attention) are native ONNX ops; None (default) = those the
    opset has and the installed onnxruntime runs with a kernel, True = all the opset has (for
    another runtime), False = none, or a set of those op names (see the module docstring).

    ``provenance``: where each node's provenance goes (``provenance.py``): ``True`` node names and
    doc strings, ``"metadata"`` one compact table in ``metadata_props`` (no node names or doc strings,
    short initializer names), ``False`` nowhere. None (default): ``"metadata"`` for a quantized graph
    (a deployment file, kept small), else ``True``."""
    if not isinstance(graph, Graph):
        raise ExportError(f"to_onnx expects a graphforge Graph, got {type(graph).__name__}",
                          hint="trace a model first: g = gf.trace(model, gf.TensorSpec(...))")
    opset = check_opset(opset) if opset is not None else quantize.qdq_opset(graph, check_opset(None))
    _check_threshold(external_data_threshold)
    provenance = check_provenance(quantize.default_provenance(graph) if provenance is None else provenance)
    with gc_paused():  # building the protos beside a large graph: see graphforge/ir/gcpause.py
        model = build_model(graph, opset, name=name, params_as_inputs=params_as_inputs, native_ops=native_ops,
                            contrib_ops=contrib_ops)
        apply_provenance(model, provenance)
        validate(model)
    return model


def _check_threshold(threshold) -> int:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)) or threshold < 0:
        raise ExportError(f"external_data_threshold must be a non-negative number of bytes, got {threshold!r}")
    return int(threshold)


# ---- files -----------------------------------------------------------------------------------------

def _write_fully(path: str, chunks) -> int:
    total = 0
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            total += len(chunk)
        f.flush()
        os.fsync(f.fileno())
    if os.path.getsize(path) != total:
        raise ExportError(f"writing {path} came up short ({os.path.getsize(path)} of {total} bytes)")
    return total


def save_onnx(graph: Graph, path, opset: int | None = None, *, external_data_threshold: int = 2 ** 31,
              name: str | None = None, **options) -> str:
    """Export ``graph`` and write it to ``path`` atomically; returns the path.

    Initializers of at least ``external_data_threshold`` bytes go to one external data file beside
    it (``<file>.data``, referenced by relative name). Both files are written to a temporary folder in
    the destination directory, checked (sizes, offsets, onnx.checker on the written model) and then
    renamed into place; on any failure nothing new is left behind."""
    threshold = _check_threshold(external_data_threshold)
    model = to_onnx(graph, opset, external_data_threshold=threshold, name=name, **options)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if not base:
        raise ExportError(f"save_onnx needs a file path, got {path!r}")
    if os.path.isdir(path):
        # else the rename fails with a message naming graphforge's temp folder, not the user's path
        raise ExportError(f"save_onnx: {path!r} is a directory",
                          hint=f"give a file name, e.g. {os.path.join(path, 'model.onnx')!r}")
    data_name = base + ".data"
    try:
        os.makedirs(directory, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".gf-onnx-", dir=directory)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc}") from exc
    moved_data = False
    try:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        chunks, offset = [], 0
        for tensor in out.graph.initializer:
            raw = tensor.raw_data
            if threshold <= len(raw) and len(raw) > 0:
                pad = (-offset) % 4096  # page-aligned, so onnxruntime can memory-map it
                if pad:
                    chunks.append(b"\0" * pad)
                    offset += pad
                chunks.append(bytes(raw))
                onnx.external_data_helper.set_external_data(tensor, data_name, offset=offset, length=len(raw))
                tensor.data_location = onnx.TensorProto.EXTERNAL
                tensor.ClearField("raw_data")
                offset += len(raw)
        tmp_model = os.path.join(tmp, base)
        if chunks:
            written = _write_fully(os.path.join(tmp, data_name), chunks)
            if written != offset:
                raise ExportError(f"external data for {path} is {written} bytes, expected {offset}")
        _write_fully(tmp_model, [out.SerializeToString()])
        onnx.checker.check_model(tmp_model, full_check=False)
        if chunks:
            os.replace(os.path.join(tmp, data_name), os.path.join(directory, data_name))
            moved_data = True
        os.replace(tmp_model, os.path.join(directory, base))
    except BaseException as exc:
        if moved_data:
            try:
                os.remove(os.path.join(directory, data_name))
            except OSError:
                pass
        if isinstance(exc, (OSError, onnx.checker.ValidationError)):
            raise ExportError(f"cannot write {path}: {exc}") from exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
from . import linalg_det  # noqa: F401,E402  (det)
from . import strings  # noqa: F401,E402  (StringNormalizer, StringConcat, StringSplit, RegexFullMatch)
from . import vision_grid, vision_roi, vision_deform, col2im  # noqa: F401,E402  (grid_sample, roi_align, ...)
from . import rotary  # noqa: F401,E402  (rotary_embedding)
