"""Scaling ``gf.Trainer`` out: data-parallel and model-sharded training on JAX's SPMD engine.

Nothing here hand-writes communication. A :class:`Distributed` plan holds a ``jax.sharding.Mesh``
with a ``data`` axis (and optionally others, e.g. ``model``) and gives every array of the train step
a ``NamedSharding``: the batch is split over ``data`` (leading axis), parameters and optimizer state
are replicated unless a glob rule shards a parameter over another mesh axis (its optimizer-state
twins follow it). The step is the Trainer's own step function under ``jax.jit(in_shardings=...,
out_shardings=...)``; XLA's partitioner inserts the all-reduces / all-gathers.

Batches whose leading size does not divide the ``data`` axis run replicated (every device computes
the whole batch; the result is the same, the step is just not parallel) with one warning per shape.
We neither pad (a user loss such as ``mean`` would count the padding) nor drop rows (the run would
differ from single-device training).

Multi-process (one controller per host/process): call :func:`initialize` before anything touches
JAX devices; then every process runs the same program, the global batch of a step is built with
``jax.make_array_from_callback`` so each process reads only the rows its own devices hold, and
checkpoints are written by process 0 only (all processes read them).

Failing peers end in a typed :class:`PeerFailureError` within a bounded time, never an abort or a
hang: :func:`initialize` first holds its own rendezvous on the coordinator's port (a process that
never starts is reported after ``timeout_s``, where jax's client would abort the process from C++),
and every step, evaluation, gather and barrier runs under a watchdog (:func:`guarded`) that turns a
collective error (gloo's "connection closed by peer") or a deadline overrun into that error, naming
the last checkpoint all processes completed so the job can restart with ``--resume``.

jax is imported lazily (``import graphforge`` loads no back end).
"""
from __future__ import annotations

import fnmatch
import math
import re
import warnings
from typing import Mapping, Sequence

import numpy as np

from ..errors import BackendError, InputError
from .peers import PeerFailureError, guarded, rendezvous, watchdog

__all__ = ["Distributed", "DEFAULT_PARAM_RULES", "resolve", "make_mesh", "initialize", "collective_bytes",
           "RowView", "PeerFailureError"]

#: Sharding applied when the mesh has a ``model`` axis and ``param_sharding`` is not given:
#: Megatron-style feed-forward split (``fc1`` over its out-features, ``fc2`` over its in-features),
#: so the hidden activation stays sharded and only the ``fc2`` output needs a reduction.
DEFAULT_PARAM_RULES: dict[str, tuple] = {
    "*ffn.fc1.weight": ("model", None),
    "*ffn.fc1.bias": ("model",),
    "*ffn.fc2.weight": (None, "model"),
}

_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4,
                "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}


def initialize(coordinator_address: str, num_processes: int, process_id: int, *, timeout_s: int = 300,
               checkpoint_dir: str | None = None) -> None:
    """Join a multi-process run (``jax.distributed.initialize``); must precede any use of JAX devices.

    ``timeout_s`` bounds the wait for every process to arrive and, afterwards, any one step or
    collective (a peer that died or stopped answering): both end in :class:`PeerFailureError`, which
    names the newest complete checkpoint in ``checkpoint_dir``. On CPU the cross-process collectives
    go through gloo (jax's ``jax_cpu_collectives_implementation``)."""
    if not isinstance(num_processes, int) or num_processes < 1:
        raise InputError(f"num_processes must be a positive integer, got {num_processes!r}")
    if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise InputError(f"process_id must be in [0, {num_processes}), got {process_id!r}")
    if not re.fullmatch(r"[\w.\-\[\]:]+:\d{1,5}", coordinator_address or ""):
        raise InputError(f"coordinator address must be HOST:PORT, got {coordinator_address!r}",
                         hint="e.g. --coordinator 127.0.0.1:12345 (the same on every process)")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
        raise InputError(f"the coordinator timeout must be a positive number of seconds, got {timeout_s!r}")
    watchdog.configure(timeout_s=float(timeout_s), checkpoint_dir=checkpoint_dir, process_id=process_id,
                       num_processes=num_processes)
    # our own rendezvous first: jax's client aborts the process (SIGABRT from C++) when a peer is
    # missing at its deadline, which no Python handler can turn into a message
    left = rendezvous(coordinator_address, num_processes, process_id, timeout_s=float(timeout_s))
    import jax

    try:
        # gloo is the default in recent jax; set it explicitly so CPU collectives never fall back to
        # "none" (which refuses cross-process programs)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, KeyError, ValueError):
        pass
    try:
        # a short shutdown timeout: after a peer failure the exit barrier cannot complete. The
        # coordination service's heartbeat must outlast our watchdog (first step: 4x the deadline):
        # when it fires first, jax ends the process from C++ with a stack instead of our typed error
        jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                   process_id=process_id, initialization_timeout=max(5, int(left)),
                                   heartbeat_timeout_seconds=int(timeout_s * (_Guarded.FIRST_CALL_FACTOR + 2)) + 30,
                                   shutdown_timeout_seconds=max(5, min(30, int(timeout_s))))
    except RuntimeError as exc:
        raise BackendError(f"jax.distributed.initialize failed: {exc}",
                           hint="call it before anything uses JAX devices, and start all "
                                f"{num_processes} processes with the same --coordinator") from exc


def make_mesh(spec: Mapping[str, int]):
    """A ``Mesh`` from ``{"data": 4, "model": 2}`` over the first devices (one axis may be -1: the rest)."""
    import jax
    from jax.sharding import Mesh

    spec = dict(spec)
    if not spec or not all(isinstance(k, str) for k in spec):
        raise InputError(f"mesh spec must map axis names to sizes, e.g. {{'data': 4, 'model': 2}}, got {spec!r}")
    devices = jax.devices()
    free = [k for k, v in spec.items() if v == -1]
    if len(free) > 1 or any((not isinstance(v, int)) or (v < 1 and v != -1) for v in spec.values()):
        raise InputError(f"mesh sizes must be positive integers (at most one -1), got {spec!r}")
    if free:
        rest = math.prod(v for v in spec.values() if v != -1)
        if len(devices) % rest:
            raise InputError(f"mesh {spec!r}: {len(devices)} devices do not divide into {rest}")
        spec[free[0]] = len(devices) // rest
    n = math.prod(spec.values())
    if n > len(devices):
        raise InputError(f"mesh {spec!r} needs {n} devices, only {len(devices)} are visible",
                         hint="on CPU, simulate devices with XLA_FLAGS=--xla_force_host_platform_device_count=N "
                              "(set before jax is imported)")
    grid = np.array(devices[:n], dtype=object).reshape(tuple(spec.values()))
    return Mesh(grid, tuple(spec))


def resolve(mesh, param_sharding, params: Mapping[str, object], data_axis: str = "data"):
    """The Trainer's plan: None (single-device path, unchanged) or a :class:`Distributed`.

    ``mesh``: None (data-parallel over all visible devices when there are several), a
    ``jax.sharding.Mesh`` or a ``{"axis": size}`` spec."""
    import jax
    from jax.sharding import Mesh

    if mesh is None:
        if jax.device_count() <= 1:
            return None
        mesh = make_mesh({data_axis: jax.device_count()})
    elif isinstance(mesh, Mapping):
        mesh = make_mesh(mesh)
    elif not isinstance(mesh, Mesh):
        raise InputError(f"mesh must be None, a jax.sharding.Mesh or a dict like {{'data': 4}}, got "
                         f"{type(mesh).__name__}")
    if data_axis not in mesh.axis_names:
        raise InputError(f"the mesh has axes {tuple(mesh.axis_names)}; the Trainer needs a {data_axis!r} axis "
                         "to split the batch over", hint=f"name one axis {data_axis!r} (size 1 for no data parallelism)")
    if mesh.size == 1 and jax.process_count() == 1:
        return None  # one device: the plain single-device step (bitwise as before)
    return Distributed(mesh, param_sharding, params, data_axis)


class RowView:
    """Rows ``index`` of ``array`` without copying them: ``jax.make_array_from_callback`` asks for the
    slices each local device holds, so a process only ever reads its own part of a batch."""

    def __init__(self, array, index):
        self.array, self.index = array, np.asarray(index)
        self.shape = (len(self.index),) + tuple(np.shape(array)[1:])
        self.dtype = array.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        rows = self.index[key[0]] if key else self.index
        return np.asarray(self.array[rows])[(slice(None),) + tuple(key[1:])]

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.array[self.index])
        return out if dtype is None else out.astype(dtype)


class Distributed:
    """Shardings of one training setup over ``mesh`` (see the module docstring)."""

    def __init__(self, mesh, param_sharding, params: Mapping[str, object], data_axis: str = "data"):
        import jax
        from jax.sharding import NamedSharding, PartitionSpec

        self.mesh, self.data_axis = mesh, data_axis
        self.data_size = int(mesh.shape[data_axis])
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.batch_sharded = NamedSharding(mesh, PartitionSpec(data_axis))
        user = param_sharding is not None
        rules = dict(DEFAULT_PARAM_RULES if param_sharding is None else param_sharding)
        if not user:  # the defaults only apply to axes the mesh has (beyond size 1)
            rules = {k: v for k, v in rules.items()
                     if all(a is None or mesh.shape.get(a, 1) > 1 for a in _axes(v))}
        self.param_specs = _match_rules(rules, {n: tuple(np.shape(v)) for n, v in params.items()}, mesh, strict=user)
        self.param_shardings = {n: NamedSharding(mesh, PartitionSpec(*self.param_specs.get(n, ())))
                                for n in params}
        self.is_writer = jax.process_index() == 0
        self._warned: set = set()

    def __repr__(self) -> str:
        return f"Distributed(mesh={dict(self.mesh.shape)}, sharded_params={self.param_specs})"

    # ---- shardings ------------------------------------------------------------------------------
    def state_shardings(self, names: Sequence[str]) -> dict:
        return {n: self.param_shardings.get(n, self.replicated) for n in names}

    def opt_shardings(self, opt_state, params: Mapping[str, object]):
        """Optimizer-state leaves that mirror a sharded param (adam's mu/nu, ...) follow its sharding;
        everything else (step counts, scalars) is replicated."""
        import jax
        from jax.tree_util import DictKey

        flat, treedef = jax.tree_util.tree_flatten_with_path(opt_state)
        out = []
        for path, leaf in flat:
            name = next((k.key for k in reversed(path) if isinstance(k, DictKey) and k.key in params), None)
            if name is not None and tuple(np.shape(leaf)) == tuple(np.shape(params[name])):
                out.append(self.param_shardings[name])
            else:
                out.append(self.replicated)
        return jax.tree_util.tree_unflatten(treedef, out)

    def input_shardings(self, shapes: Sequence[tuple]) -> list:
        """Batch-major inputs split over the data axis; scalars (the dropout key) and batches that do
        not divide the data axis are replicated (see the module docstring)."""
        out = []
        for shape in shapes:
            if not shape:
                out.append(self.replicated)
            elif shape[0] % self.data_size == 0:
                out.append(self.batch_sharded)
            else:
                if shape[0] not in self._warned:
                    self._warned.add(shape[0])
                    warnings.warn(f"graphforge: a batch of {shape[0]} rows does not divide the {self.data_axis!r} "
                                  f"mesh axis ({self.data_size} devices); it runs replicated on every device "
                                  f"(same result, no data-parallel speed-up). Use a batch size that is a multiple "
                                  f"of {self.data_size}.", stacklevel=4)
                out.append(self.replicated)
        return out

    # ---- placement ------------------------------------------------------------------------------
    def place(self, array, sharding, dtype=None):
        """A global ``jax.Array`` with ``sharding`` from a host array (every process passes the same
        global value; each reads only the slices its devices hold). Arrays already laid out so pass."""
        import jax

        if isinstance(array, jax.Array) and array.sharding == sharding and (dtype is None or array.dtype == dtype):
            return array
        shape = tuple(np.shape(array))

        def piece(index):
            part = array[index] if shape else array
            return np.asarray(part, dtype=dtype)
        return jax.make_array_from_callback(shape, sharding, piece)

    def place_tree(self, tree, shardings):
        import jax
        return jax.tree_util.tree_map(lambda a, s: self.place(a, s), tree, shardings)

    def place_inputs(self, arrays: Sequence, dtypes: Sequence) -> tuple:
        shardings = self.input_shardings([tuple(np.shape(a)) for a in arrays])
        return tuple(self.place(a, s, d) for a, s, d in zip(arrays, shardings, dtypes))

    def global_batch(self, local_array):
        """The global batch from this process's rows (``jax.make_array_from_process_local_data``); pass
        the result to ``trainer.train_step`` to feed per-process data loaders."""
        import jax
        with jax.enable_x64(True):  # int64 targets stay int64 (the scoped x64 of runtimes.jax)
            return jax.make_array_from_process_local_data(self.batch_sharded, np.asarray(local_array))

    def to_host(self, x) -> np.ndarray:
        """NumPy value of a (possibly multi-process) array. Sharded arrays spanning other processes are
        all-gathered: a collective, so every process must call it at the same point."""
        if not hasattr(x, "is_fully_addressable") or x.is_fully_addressable:
            return np.asarray(x)
        if x.is_fully_replicated:
            return guarded(lambda: np.asarray(x.addressable_data(0)), what="reading a replicated value")
        from jax.experimental import multihost_utils
        return guarded(lambda: np.asarray(multihost_utils.process_allgather(x, tiled=True)), what="an all-gather")

    def barrier(self, name: str) -> None:
        import jax
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            guarded(multihost_utils.sync_global_devices, name, what=f"barrier {name!r}")
            m = re.fullmatch(r"graphforge-checkpoint-(\d+)", name)
            if m:  # every process is past this checkpoint's write: it is complete
                watchdog.checkpoint_completed(int(m.group(1)))

    # ---- compiled functions ---------------------------------------------------------------------
    def jit_step(self, step, params, buffers, opt_state, input_shapes, compiler_options=None):
        import jax

        p = self.state_shardings(list(params))
        b = self.state_shardings(list(buffers))
        o = self.opt_shardings(opt_state, params)
        ins = tuple(self.input_shardings(input_shapes))
        return _Guarded(jax.jit(step, donate_argnums=(0, 1, 2), in_shardings=(p, b, o, ins),
                                out_shardings=(p, b, o, self.replicated, self.replicated),
                                compiler_options=compiler_options), "a train step")

    def jit_eval(self, fn, params, input_shapes, compiler_options=None):
        import jax

        ins = tuple(self.input_shardings(input_shapes))
        # outputs replicated: scalars and predictions come back whole on every process
        return _Guarded(jax.jit(fn, in_shardings=(self.state_shardings(list(params)), ins),
                                out_shardings=self.replicated, compiler_options=compiler_options),
                        "an evaluation step")


class _Guarded:
    """A jitted function whose calls run under the peer watchdog when several processes take part
    (results are waited for inside it, so a collective failure surfaces here); everything else
    (``lower``, ``trace``…) is the jitted function's."""

    FIRST_CALL_FACTOR = 4
    """The first call compiles, and the processes arrive at it as far apart as their start-up times:
    it gets this many times the watchdog's deadline."""

    def __init__(self, fn, what: str):
        self._fn, self._what, self._called = fn, what, False

    def __call__(self, *args, **kwargs):
        import jax

        if jax.process_count() <= 1:
            return self._fn(*args, **kwargs)
        limit = watchdog.timeout_s * (1 if self._called else self.FIRST_CALL_FACTOR)
        out = guarded(lambda: jax.block_until_ready(self._fn(*args, **kwargs)), what=self._what, timeout_s=limit)
        self._called = True
        return out

    def __getattr__(self, name):
        return getattr(self._fn, name)


def _axes(spec) -> list:
    out = []
    for entry in spec:
        out.extend(entry if isinstance(entry, tuple) else [entry])
    return out


def _match_rules(rules: Mapping[str, tuple], shapes: Mapping[str, tuple], mesh, *, strict: bool) -> dict:
    """Param name -> PartitionSpec entries, first matching glob wins. ``strict`` (user rules): a rule
    that matches nothing, names an unknown axis, or does not divide its dim is an InputError; the
    default rules skip such params (they stay replicated)."""
    out: dict[str, tuple] = {}
    used = {pat: False for pat in rules}
    for name, shape in shapes.items():
        for pat, spec in rules.items():
            if not fnmatch.fnmatchcase(name, pat):
                continue
            used[pat] = True
            spec = tuple(spec) if isinstance(spec, (tuple, list)) else (spec,)
            problem = _spec_problem(spec, shape, mesh)
            if problem is None:
                if any(a is not None for a in _axes(spec)):
                    out[name] = spec
            elif strict:
                raise InputError(f"param_sharding rule {pat!r} -> {spec} does not fit param {name!r} of shape "
                                 f"{shape}: {problem}", hint=f"mesh axes: {dict(mesh.shape)}")
            break
    if strict:
        unused = [p for p, u in used.items() if not u]
        if unused:
            raise InputError(f"param_sharding rule(s) {unused} match no parameter",
                             hint="params are named like " + ", ".join(sorted(shapes)[:6]))
    return out


def _spec_problem(spec: tuple, shape: tuple, mesh) -> str | None:
    if len(spec) > len(shape):
        return f"{len(spec)} entries for a rank-{len(shape)} param"
    for dim, entry in zip(shape, spec):
        names = entry if isinstance(entry, tuple) else (entry,)
        unknown = [a for a in names if a is not None and a not in mesh.shape]
        if unknown:
            return f"unknown mesh axis {unknown[0]!r}"
        size = math.prod(mesh.shape[a] for a in names if a is not None)
        if dim % size:
            return f"dim {dim} does not divide into {size} shards"
    return None


# ---- communication volume ---------------------------------------------------------------------

_OP_RE = re.compile(r"=\s*(?P<type>.+?)\s+(?P<op>" + "|".join(_COLLECTIVES) + r")(?P<start>-start)?\(")
_SHAPE_RE = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([\d,]*)\]")


def collective_bytes(hlo_text: str) -> dict[str, int]:
    """Bytes moved per step by each kind of collective in a compiled HLO module's text (the sum of
    the result sizes of every ``all-reduce``, ``all-gather``, ...; async ``-start``/``-done`` pairs
    count once). Keys: the collective names present, plus ``total``."""
    out: dict[str, int] = {}
    for line in hlo_text.splitlines():
        m = _OP_RE.search(line)
        if not m:
            continue
        shapes = _SHAPE_RE.findall(m.group("type"))
        if m.group("start") and m.group("op") in ("all-gather", "collective-permute"):
            shapes = shapes[len(shapes) // 2:]  # a -start result holds (operands, results): count the results
        size = sum(_DTYPE_BYTES[dt] * math.prod(int(d) for d in dims.split(",") if d) for dt, dims in shapes)
        out[m.group("op")] = out.get(m.group("op"), 0) + size
    out["total"] = sum(out.values())
    return out


def _stand_ins(arrays: Sequence) -> list:
    """Zero-memory arrays with the shapes and dtypes of ``arrays`` (enough to bind and compile)."""
    return [np.broadcast_to(np.zeros((), dtype=np.dtype(a.dtype)), tuple(np.shape(a))) if hasattr(a, "dtype")
            else np.asarray(a) for a in arrays]
