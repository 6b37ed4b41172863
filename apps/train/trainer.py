"""``gf.Trainer``: Keras/PyTorch-Lightning-style training of a graphforge model with JAX + optax.

    trainer = gf.Trainer(model, loss_fn=nn.functional.cross_entropy, optimizer=optax.adam(1e-3),
                         inputs=[gf.TensorSpec(("batch", 784))], targets=gf.TensorSpec(("batch",), "int64"),
                         metrics={"accuracy": nn.functional.accuracy}, seed=0)
    history = trainer.fit(x, y, epochs=5, batch_size=128, validation_data=(xv, yv))

Graphs: ``trainer.train_graph`` (training mode: loss, metrics, ``update:`` buffers), its gradient
graph ``trainer.grad_graph`` (``gf.grad(..., keep_outputs=True)``), ``trainer.eval_graph`` (eval
mode: loss and metrics) and ``trainer.graph`` (eval-mode model, the predictor). Dropout keys: the
graph input ``rng`` gets ``step_key(seed, step)`` — deterministic, so a resumed run is bitwise equal
to an uninterrupted one. Shuffling uses ``numpy.random.default_rng([seed, epoch])``.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, InputError, LoadError, ShapeError
from ..ir.graph import Graph
from ..ir.types import TensorSpec, TensorType
from ..trace.builder import Builder
from ..trace.tensor import Tensor
from ..trace.tracer import trace
from . import callbacks as _callbacks
from .data import Stream as _Stream
from .data import as_batch as _as_batch
from .data import as_list as _as_list
from .data import batch_rows as _batch_rows
from .data import rows as _rows
from .optimizers import OPTIMIZER_DEFAULTS
from .optimizers import learning_rate as _learning_rate
from .optimizers import resolve_optimizer as _resolve_optimizer
from .plot import plot_history
from .precision import dynamic_loss_scale as _dynamic_loss_scale
from .precision import resolve_precision as _resolve_precision
from . import checkpoint as _ckpt
from .distributed import RowView

__all__ = ["Trainer", "plot_history", "step_key", "OPTIMIZER_DEFAULTS", "TIMING_KEYS"]

# history entries measured with the wall clock: they differ from run to run (a resumed or
# distributed run matches an uninterrupted one in every other entry)
TIMING_KEYS = ("examples_per_s", "step_time_ms")

def _as_module(model):
    """A Graph (e.g. from ``gf.from_onnx``) becomes a module whose params are all trainable."""
    if isinstance(model, Graph):
        from graphforge.runtimes.onnx_import import GraphModule
        return GraphModule(model)
    return model


def _platform() -> str:
    """The platform the trainer's steps compile for (jax's default backend: "cpu", "gpu", ...)."""
    import jax
    return jax.default_backend()


def step_key(seed: int, step: int) -> np.uint32:
    """The dropout key of a train step (splitmix-style mix of seed and step, uint32)."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + int(step) * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & (2 ** 64 - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2 ** 64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2 ** 64 - 1)
    return np.uint32((z ^ (z >> 31)) & 0xFFFFFFFF)


def _specs(x) -> list:
    if x is None:
        return []
    if isinstance(x, (TensorSpec, TensorType)):
        return [x]
    return list(x)


def _with_loss(model, input_specs, target_specs, loss_fn, metrics, seed, training) -> Graph:
    """The model traced in ``training`` mode with target inputs, loss and metric outputs appended."""
    g = trace(model, *input_specs, seed=seed, training=training)
    preds = [(v, n) for v, n in zip(g.outputs, g.output_names) if not n.startswith("update:")]
    updates = [(v, n) for v, n in zip(g.outputs, g.output_names) if n.startswith("update:")]
    builder = Builder(g)
    builder.training = training
    builder.seed = seed
    with builder.activate():
        targets = []
        for i, spec in enumerate(target_specs):
            t = spec.type if isinstance(spec, TensorSpec) else spec
            name = getattr(spec, "name", None) or ("y" if len(target_specs) == 1 else f"y{i}")
            targets.append(Tensor(g.add_input(name, t), builder))
        p = [Tensor(v, builder) for v, _ in preds]
        loss = _scalar_result("loss_fn", "loss", loss_fn(*p, *targets))
        outs, names = [loss.value], ["loss"]
        for mname, fn in (metrics or {}).items():
            outs.append(_scalar_result(f"metrics[{mname!r}]", mname, fn(*p, *targets)).value)
            names.append(mname)
    g.set_outputs(outs + [v for v, _ in updates], names + [n for _, n in updates])
    g.verify()
    return g


def _scalar_result(what: str, name: str, value) -> Tensor:
    """The loss (or a metric) as a scalar Tensor; anything else is explained in Trainer terms."""
    if not isinstance(value, Tensor):
        raise ConfigError(f"gf.Trainer: {what} returned a {type(value).__name__}, not a graphforge Tensor",
                          hint=f"{what} is traced: build the {name} with graphforge ops on its arguments")
    if value.value.type.shape != ():
        raise ShapeError(f"gf.Trainer: {what} returned {value.value.type}, but the {name} must be one number "
                         "per batch (a scalar) for the Trainer to minimise/average it",
                         hint="reduce it over the batch, e.g. return gf.mean(per_example_loss)")
    return value


class Trainer:
    """Train ``model`` (an ``nn.Module``, or a ``gf.Graph`` such as ``gf.from_onnx(...)`` with all its
    params trainable) on ``loss_fn(predictions..., targets...)`` with an optax ``optimizer`` (any
    ``GradientTransformation``, used unchanged, or a name: ``"adam"`` is ``optax.adam(1e-3)``, see
    ``OPTIMIZER_DEFAULTS``).

    Trained weights go back into ``model`` at the end of every ``fit`` and ``load_checkpoint``
    (``model.load_state_dict(trainer.state_dict())`` for a module, its ``params`` for a Graph), so
    ``gf.trace(model, ...)`` afterwards sees them.

    ``mesh`` (None: data-parallel over all visible devices when there are several; a
    ``jax.sharding.Mesh`` or ``{"data": 4, "model": 2}``) and ``param_sharding`` (glob -> PartitionSpec
    entries; None: ``distributed.DEFAULT_PARAM_RULES``) scale the step out; see docs/distributed.md.

    Args:
        model: the ``nn.Module`` (or ``gf.Graph``) to train.
        loss_fn: ``loss_fn(predictions..., targets...) -> scalar Tensor``, e.g. ``nn.functional.cross_entropy``.
        optimizer: an optax ``GradientTransformation`` or a name (``"adam"``, ``"sgd"``, ...).
        inputs: a ``gf.TensorSpec`` or a list of them, one per model input.
        targets: a ``gf.TensorSpec`` or a list of them, one per extra argument of ``loss_fn``.
        metrics: name -> ``fn(predictions..., targets...)`` (e.g. ``nn.functional.accuracy``), logged per epoch.
        seed: parameter initialisation, shuffling and dropout keys.
        progress: the default of ``fit``'s ``verbose``: a tqdm progress bar (on a terminal) and one
            line per epoch (``--quiet`` in the CLI turns both off).
        precision: ``"bf16-mixed"``/``"fp16-mixed"`` (or a ``graphforge.train.MixedPrecision``) train in
            mixed precision with float32 master weights (fp16 with dynamic loss scaling); ``"default"``,
            ``"high"``, ``"highest"`` are XLA's matmul precision for float32.
        remat: rematerialise activations in the backward pass (``"nothing"``/``"dots"`` for every
            top-level module, a mapping scope -> policy, or ``graphforge.passes.remat.RematBudget(bytes,
            dims)``); ``nn.remat(module)`` marks modules too.
        sharding: ``"fsdp"`` (with ``mesh={"data": N}``) shards every param of ``>= fsdp_min_size``
            elements and its optimizer state over the data axis (``trainer.device_bytes()``).
        keep_checkpoints: how many checkpoints ``fit(checkpoint_dir=...)`` keeps.
        mesh: see above.
        param_sharding: see above.
        learning_rate: with an optimizer given by name, its learning rate.
        grad_norm: log the global L2 norm of the gradients (``grad_norm`` in the history and
            ``step_history``). Off by default, as in Keras and Lightning: it reads every gradient once
            more per step (on the MLP-128 benchmark, 19 % more memory traffic per step).
        xla_options: XLA compiler options for this trainer's compiled steps (train and eval), passed
            per executable (``jax.jit(compiler_options=...)``; no process-wide ``XLA_FLAGS``), e.g.
            ``{"xla_cpu_use_onednn": True}``. They update graphforge's defaults: on the CPU a step
            with remat compiles with ``runtimes/jax/xla_options.py: REMAT_CPU_OPTIONS`` (without them
            XLA:CPU merges the recomputation back), a convolution network's step (no attention or
            loop) with ``CONV_CPU_OPTIONS`` (no YNNPACK fusions: faster convolution steps); a value
            ``None`` removes a default. The effective train-step options are ``trainer.xla_options``.

    Raises:
        InputError: no input specs.
        ConfigError: an unknown optimizer name (with the close matches); an ``xla_options`` name or
            value XLA does not accept.
        ShapeError: the model or loss does not trace on the specs (named as in ``gf.trace``).

    Example:
        ```python
        trainer = gf.Trainer(MLP(), loss_fn=nn.functional.cross_entropy, optimizer=optax.adamw(1e-3),
                             inputs=[gf.TensorSpec(("batch", 784))], targets=gf.TensorSpec(("batch",), "int64"),
                             metrics={"accuracy": nn.functional.accuracy})
        history = trainer.fit(x, y, epochs=10, batch_size=64, validation_data=(xv, yv))
        ```
    """

    def __init__(self, model, loss_fn: Callable, optimizer, inputs, targets, *,
                 metrics: Mapping[str, Callable] | None = None, seed: int = 0, progress: bool = True,
                 precision: str = "default", keep_checkpoints: int = 3, mesh=None,
                 param_sharding: Mapping[str, tuple] | None = None, learning_rate=None, remat=None,
                 sharding: str | None = None, fsdp_min_size: int = 1024, grad_norm: bool = False,
                 xla_options: Mapping | None = None):
        from ..api import grad

        optimizer = _resolve_optimizer(optimizer, learning_rate)
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        model = _as_module(model)
        self._module = model
        self.input_specs, self.target_specs = _specs(inputs), _specs(targets)
        if not self.input_specs:
            raise InputError("gf.Trainer needs inputs=[gf.TensorSpec(...)] describing the model inputs")
        self.metrics = dict(metrics or {})
        self.seed, self.progress, self.precision, self.keep_checkpoints = seed, progress, precision, keep_checkpoints
        # precision: an XLA matmul precision, or mixed precision (a policy; see .precision)
        self._matmul_precision, self.mixed_precision = _resolve_precision(precision)
        self.train_graph = _with_loss(model, self.input_specs, self.target_specs, loss_fn, self.metrics, seed, True)
        self.eval_graph = _with_loss(model, self.input_specs, self.target_specs, loss_fn, self.metrics, seed, False)
        self.graph = trace(model, *self.input_specs, seed=seed, training=False)
        mp = self.mixed_precision
        if mp is not None:
            from graphforge.passes.mixed_precision import mixed_precision
            self.train_graph = mixed_precision(self.train_graph, mp.dtype)
            self.eval_graph = mixed_precision(self.eval_graph, mp.dtype)
        # fp16: the loss's cotangent seed is the loss scale (an input ``d_output`` of the grad graph)
        self._loss_scaled = mp is not None and mp.scaled
        self._log_grad_norm = bool(grad_norm)
        from graphforge.runtimes.jax.xla_options import check_xla_options
        self._user_xla_options = check_xla_options(xla_options, "gf.Trainer(xla_options=...)")
        # remat: a policy for every top-level module, or scope -> policy (besides nn.remat marks)
        if self._loss_scaled:
            optimizer = _dynamic_loss_scale(optimizer, mp)
        self._opt = optimizer
        from graphforge.passes.remat import RematBudget, fit_memory_budget
        self.remat_regions = None
        if isinstance(remat, RematBudget):  # the fewest regions whose step peak fits the budget
            import jax
            shapes = {n: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype)
                      for n, a in self.train_graph.params.items() if n in self.train_graph.trainable_names}
            opt_bytes = sum(int(np.prod(l.shape)) * np.dtype(l.dtype).itemsize
                            for l in jax.tree_util.tree_leaves(jax.eval_shape(optimizer.init, shapes)))
            self.grad_graph, self.remat_regions = fit_memory_budget(
                self.train_graph, remat.bytes, remat.dims, policy=remat.policy, optimizer_bytes=opt_bytes,
                wrt="params", keep_outputs=True, cotangent_input=self._loss_scaled)
        else:
            self.grad_graph = grad(self.train_graph, wrt="params", keep_outputs=True,
                                   cotangent_input=self._loss_scaled, remat=remat)
        from graphforge.runtimes.jax.xla_options import graph_options
        self.xla_options = graph_options(self.grad_graph, self._user_xla_options, platform=_platform())
        # evaluation runs the forward graph: no remat barriers, no gradients (XLA's defaults, bar the user's)
        self._eval_xla_options = graph_options(self.train_graph, self._user_xla_options, platform=_platform())
        self.trainable = list(self.train_graph.trainable_names)
        self.buffers = [n[len("update:"):] for n in self.train_graph.output_names if n.startswith("update:")]
        self._names = [v.name for v in self.train_graph.inputs]
        # where the dropout key goes among the step's inputs (None: the graph draws no randomness)
        self._rng_at = self._names.index("rng") if "rng" in self._names else None
        self._n_inputs = len(self.input_specs)
        import jax.numpy as jnp
        from graphforge.runtimes.jax import x64
        with x64():
            self._params = {n: jnp.asarray(self.train_graph.params[n]) for n in self.trainable}
            self._buffers = {n: jnp.asarray(self.train_graph.params[n]) for n in self.buffers}
            self._opt_state = self._opt.init(self._params)
        # mesh=None: data-parallel over all devices when there are several; None plan = one device
        from . import distributed
        from .fsdp import resolve_fsdp
        # sharding="fsdp": every param >= fsdp_min_size elements (and its optimizer state) over "data"
        mesh, param_sharding = resolve_fsdp(sharding, mesh, param_sharding, self._params, fsdp_min_size)
        self._dist = distributed.resolve(mesh, param_sharding, self._params)
        if self._dist is not None:
            self._place_state()
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.step_losses: list[float] = []
        self.step_history: dict[str, list[float]] = {}
        self.stop_training = False
        self._steps: dict = {}
        self._evals: dict = {}
        self._quick: dict = {}
        self._jit_any = None
        self._x64_scope = None
        # gf.load_params(path, trainer.graph) must reach the weights the trainer trains, not a copy
        for g in (self.graph, self.train_graph, self.eval_graph):
            g.params_loaded_listeners.append(lambda arrays: self.load_state_dict(arrays, strict=False))

    # ---- state ----------------------------------------------------------------------------------
    @property
    def distributed(self):
        """The sharding plan (``graphforge.train.distributed.Distributed``), None on one device."""
        return self._dist

    def _place_state(self) -> None:
        d = self._dist
        with _x64():
            self._params = d.place_tree(self._params, d.state_shardings(list(self._params)))
            self._buffers = d.place_tree(self._buffers, d.state_shardings(list(self._buffers)))
            self._opt_state = d.place_tree(self._opt_state, d.opt_shardings(self._opt_state, self._params))

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Current trainable params and buffers as NumPy arrays (names as in ``trainer.graph``)."""
        host = np.asarray if self._dist is None else self._dist.to_host
        out = {n: host(v) for n, v in self._params.items()}
        out.update({n: host(v) for n, v in self._buffers.items()})
        return out

    @property
    def device_params(self) -> dict:
        """The live trainable params and buffers as placed on the device(s) (jax Arrays, sharded
        on a mesh): for inspecting placement (``.sharding``); ``params`` gives host copies."""
        return {**self._params, **self._buffers}

    def device_bytes(self) -> dict[str, int]:
        """``{"params": bytes, "optimizer": bytes}`` one device holds (``sharding="fsdp"`` divides both
        by the data-axis size)."""
        from .fsdp import per_device_bytes
        return per_device_bytes(self)

    @property
    def opt_state(self):
        """The live optax optimizer state (a pytree of jax Arrays, sharded like its params)."""
        return self._opt_state

    def export_graph(self) -> Graph:
        """The eval-mode model graph with the trained params stored in it.

        Returns:
            A ``gf.Graph`` (a copy), ready for ``gf.optimize`` / ``gf.save_onnx``.

        Raises:
            GraphforgeError: never for a constructed trainer (listed for completeness: it copies).

        Example:
            ```python
            gf.save_onnx(gf.optimize(trainer.export_graph()), "model.onnx")
            ```
        """
        g = self.graph.copy()
        for name, value in self.params.items():
            if name in g.params:
                g.params[name] = value.astype(g.params[name].dtype)
        return g

    def state_dict(self) -> dict[str, np.ndarray]:
        """The trained weights (params and buffers) by name, as NumPy arrays: what
        ``model.load_state_dict`` and ``gf.save_params`` take.

        Returns:
            name -> ``np.ndarray`` (names as in ``trainer.graph``, PyTorch-style dotted paths).

        Raises:
            GraphforgeError: never for a constructed trainer (it copies the device arrays to host).

        Example:
            ```python
            gf.save_params(trainer.state_dict(), "weights.safetensors")
            ```
        """
        return self.params

    def load_state_dict(self, state, strict: bool = True):
        """Replace the weights the trainer trains (optimizer state and counters are kept): ``state``
        as for ``nn.Module.load_state_dict`` (dict of NumPy arrays or PyTorch tensors, or a
        .safetensors/.npz path; PyTorch's spellings of mirrored layers are understood). Missing or
        unexpected names raise ``StateDictError`` when ``strict``; shape/dtype mismatches always.

        Args:
            state: a dict of arrays, or a ``.safetensors`` / ``.npz`` path.
            strict: missing or unexpected names are an error.

        Returns:
            What was missing and unexpected (as for ``nn.Module.load_state_dict``).

        Raises:
            StateDictError: a missing/unexpected name (``strict``) or a shape/dtype mismatch.
            LoadError: the file cannot be read.

        Example:
            ```python
            trainer.load_state_dict(torch_model.state_dict())   # PyTorch tensors are accepted
            ```
        """
        import jax.numpy as jnp
        from graphforge.nn.state import _from_pytorch, check_state, read_state_source
        from graphforge.runtimes.jax import x64

        arrays = read_state_source(state)
        _from_pytorch(self._module, arrays)
        types = {n: self.train_graph.param_values[n].type for n in list(self._params) + list(self._buffers)}
        fitted, result = check_state("Trainer.load_state_dict", arrays, types, strict)
        with x64():
            self._params = {n: jnp.asarray(fitted[n]) if n in fitted else v for n, v in self._params.items()}
            self._buffers = {n: jnp.asarray(fitted[n]) if n in fitted else v for n, v in self._buffers.items()}
        if self._dist is not None:
            self._place_state()
        self._write_back()
        return result

    def _write_back(self) -> None:
        """Put the current weights into the model the user passed (see the class docstring)."""
        params = self.params
        if isinstance(self.model, Graph):
            for name, value in params.items():
                if name in self.model.params:
                    self.model.params[name] = value.astype(self.model.params[name].dtype)
        # strict=False: params adopted during the trace (a module called inside a function) have
        # names the module tree does not know; everything it does know is written
        self._module.load_state_dict(params, strict=False)

    # ---- compiled steps -------------------------------------------------------------------------
    def _env(self, graph, arrays):
        from ..runtime import bind_inputs
        return bind_inputs(graph, arrays)

    def _train_fn(self, arrays):
        """The mesh variant's jitted step for ``arrays``' signature (in/out shardings fixed per shape)."""
        from graphforge.runtimes.jax import lower, signature

        bound, env = self._env(self.train_graph, arrays)
        key = signature(bound)
        fn = self._steps.get(key)
        if fn is None:
            step = self._step_body(lower(self.grad_graph, env, precision=self._matmul_precision))
            fn = self._dist.jit_step(step, self._params, self._buffers, self._opt_state, [b.shape for b in bound],
                                     compiler_options=self.xla_options or None)
            self._steps[key] = fn
        return fn, bound

    def _any_shape_step(self):
        """One device: a single jitted step for every batch signature. JAX's own (C++) dispatch
        finds the executable for a batch's shapes and dtypes; gf's input checks, dtype conversions
        and lowering run in Python only when JAX traces a signature it has not seen. (A Python-side
        shape/dtype key per step cost ~1.5 % of the MLP-128 step; docs/benchmarks.md.)"""
        import jax
        from graphforge.runtimes.jax import lower, signature

        from .distributed import _stand_ins

        bodies: dict = {}

        def step(params, buffers, opt_state, inputs):
            # trace time: bind the tracers' shapes/dtypes as gf.run would bind arrays (InputError
            # for a wrong rank or dtype kind), then convert same-kind dtypes inside the program
            bound, env = self._env(self.train_graph, _stand_ins(inputs))
            key = signature(bound)
            body = bodies.get(key)
            if body is None:
                body = bodies[key] = self._step_body(lower(self.grad_graph, env, precision=self._matmul_precision))
            inputs = tuple(a if a.dtype == b.dtype else a.astype(b.dtype) for a, b in zip(inputs, bound))
            return body(params, buffers, opt_state, inputs)

        return jax.jit(step, donate_argnums=(0, 1, 2), compiler_options=self.xla_options or None)

    def _step_body(self, fwd):
        """The train step around ``fwd`` (the lowered gradient graph): optimizer update, buffers, logs."""
        import optax

        names = self.grad_graph.output_names
        gi = {n[len("grad:"):]: i for i, n in enumerate(names) if n.startswith("grad:")}
        mi = [(m, names.index(m)) for m in self.metrics]
        ui = {b: names.index("update:" + b) for b in self.buffers}
        opt = self._opt
        scaled = self._loss_scaled
        log_grad_norm = self._log_grad_norm

        def step(params, buffers, opt_state, inputs):
            if scaled:  # fp16: backward from loss * scale; the optimizer wrapper unscales
                inputs = tuple(inputs) + (opt_state.scale,)
            outs = fwd({**params, **buffers}, inputs)
            grads = {n: outs[gi[n]] for n in params}
            updates, new_state = opt.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            buffers = {b: outs[ui[b]] for b in buffers}
            logs = {m: outs[i] for m, i in mi}
            # the history's grad norm and learning rate come out of the same jitted step (one
            # fused reduction; no extra dispatch or transfer per step)
            if log_grad_norm:
                logs["grad_norm"] = optax.tree.norm(grads)
                if scaled:
                    logs["grad_norm"] = logs["grad_norm"] / opt_state.scale
            if scaled:
                logs["loss_scale"] = opt_state.scale
                logs["skipped_steps"] = new_state.skipped.astype("float32")
            opt_state = new_state
            lr = _learning_rate(opt_state)
            if lr is not None:
                logs["lr"] = lr
            return params, buffers, opt_state, outs[0], logs

        return step

    def _eval_fn(self, graph, arrays):
        import jax
        from graphforge.runtimes.jax import lower, signature

        bound, env = self._env(graph, arrays)
        key = (id(graph), signature(bound))
        fn = self._evals.get(key)
        if fn is None:
            fn = lower(graph, env, precision=self._matmul_precision)
            opts = self._eval_xla_options or None
            fn = jax.jit(fn, compiler_options=opts) if self._dist is None else self._dist.jit_eval(
                fn, {**self._params, **self._buffers}, [b.shape for b in bound], compiler_options=opts)
            self._evals[key] = fn
        return fn, bound

    def _device_inputs(self, bound) -> tuple:
        import jax.numpy as jnp
        if self._dist is None:
            return tuple(jnp.asarray(a) for a in bound)
        return self._dist.place_inputs(bound, [b.dtype for b in bound])

    def _host(self, x) -> np.ndarray:
        return np.asarray(x) if self._dist is None else self._dist.to_host(x)

    def _inputs(self, xs: Sequence, ys: Sequence, step: int) -> list:
        arrays = [*xs, *ys]
        if self._rng_at is not None:
            arrays.insert(self._rng_at, step_key(self.seed, step))
        return arrays

    def train_step(self, x, y) -> dict:
        """One optimisation step on a batch (for custom loops; ``fit`` does this for you).

        Args:
            x: the batch's inputs (an array or a list of arrays).
            y: the batch's targets (an array or a list of arrays).

        Returns:
            ``{"loss", <metrics>[, "grad_norm"][, "lr"]}`` as device scalars (``float()`` them; that
            waits for the step).

        Raises:
            InputError: the batch has the wrong shape or dtype.

        Example:
            ```python
            for xb, yb in batches:
                logs = trainer.train_step(xb, yb)
            print(float(logs["loss"]))
            ```
        """
        return self._step(_as_batch(x), _as_batch(y))

    def _step(self, xs: list, ys: list) -> dict:
        """``train_step`` on inputs and targets already given as lists of arrays."""
        _, x64 = _jax_step_modules()
        arrays = self._inputs(xs, ys, self.step)
        if self._dist is not None:
            return self._train_step_sharded(arrays)
        # a batch whose shapes/dtypes were seen before goes straight to the executable (device arrays
        # stay on the device); anything new is checked, bound and compiled once, at trace time
        fn = self._jit_any
        if fn is None:
            fn = self._jit_any = self._any_shape_step()
        scope = self._x64_scope
        if scope is None:   # one reusable x64 scope per trainer: building one costs ~1.5 µs a step
            scope = self._x64_scope = x64()
        with scope:
            try:
                self._params, self._buffers, self._opt_state, loss, mets = fn(
                    self._params, self._buffers, self._opt_state, tuple(arrays))
            except TypeError:
                # an argument jit cannot take (text, objects): gf's input checks name the problem
                self._env(self.train_graph, arrays)
                raise
        self.step += 1
        return {"loss": loss, **mets}

    def compiled_step(self, x, y):
        """The XLA-compiled train step ``train_step(x, y)`` would run, without taking a step:
        ``.as_text()`` is its HLO, ``distributed.collective_bytes(...)`` its communication per step,
        ``.memory_analysis()`` / ``.cost_analysis()`` what XLA reports."""
        from graphforge.runtimes.jax import x64

        from .distributed import _stand_ins

        arrays = self._inputs(_as_batch(x), _as_batch(y), self.step)
        with x64():
            if self._dist is None:
                if self._jit_any is None:
                    self._jit_any = self._any_shape_step()
                return self._jit_any.lower(self._params, self._buffers, self._opt_state,
                                           tuple(_stand_ins(arrays))).compile()
            fn, bound = self._train_fn(_stand_ins(arrays))
            args = self._dist.place_inputs(arrays, [b.dtype for b in bound])
            return fn.lower(self._params, self._buffers, self._opt_state, args).compile()

    def _train_step_sharded(self, arrays) -> dict:
        """The mesh variant of train_step: ``arrays`` are the global batch (the same on every
        process, NumPy, ``RowView`` or global jax.Arrays); each process places only its own rows."""
        from .distributed import _stand_ins

        quick = tuple((tuple(np.shape(a)), str(a.dtype)) for a in arrays)
        with _x64():
            hit = self._quick.get(quick)
            if hit is None:
                # gf's input checks and binding see zero-memory stand-ins: no batch is copied here
                fn, bound = self._train_fn(_stand_ins(arrays))
                hit = self._quick[quick] = (fn, [b.dtype for b in bound])
            fn, dtypes = hit
            args = self._dist.place_inputs(arrays, dtypes)
            self._params, self._buffers, self._opt_state, loss, mets = fn(
                self._params, self._buffers, self._opt_state, args)
        self.step += 1
        return {"loss": loss, **mets}

    # ---- fit / evaluate / predict ---------------------------------------------------------------
    def fit(self, x=None, y=None, *, epochs: int = 1, batch_size: int = 32, validation_data=None,
            shuffle: bool = True, checkpoint_dir: str | None = None, resume: bool = False,
            verbose: bool | None = None, steps_per_epoch: int | None = None,
            callbacks: Sequence | None = None) -> dict[str, list[float]]:
        """Train for ``epochs`` more epochs, like Keras (with ``resume=True``: up to ``epochs`` in all,
        counting the epochs of the checkpoint it resumes from). ``x``/``y``: arrays (or lists of
        arrays for several inputs/targets), or ``x`` an iterable of ``(x, y)`` batches.

        An iterable of batches: a re-iterable (a list, a dataset whose ``__iter__`` restarts) is
        iterated once per epoch; a one-shot iterator (a generator) needs ``steps_per_epoch`` when
        more than one epoch is asked for (each epoch then takes the next ``steps_per_epoch``
        batches of the one stream), else it is an ``InputError`` before any step — it could not
        feed epoch 2. An epoch with no batches, or a stream that runs dry, is an ``InputError``.
        ``callbacks``: ``gf.callbacks`` objects (``EarlyStopping``, ``BestCheckpoint``, ``CSVLogger``,
        ``TensorBoard``, ``LambdaCallback`` or any ``Callback`` subclass); a callback's
        ``on_step_end`` is called only when it defines one, so per-epoch callbacks cost no step time.

        Returns the history dict, per epoch over every ``fit`` of this trainer: ``loss`` and the
        metrics (example-weighted means), ``grad_norm`` (mean global L2 norm of the gradients, with
        ``Trainer(grad_norm=True)``),
        ``lr`` (the learning rate of the epoch's last step, when the optimizer exposes it, see
        docs/training.md), ``examples_per_s``, ``step_time_ms``, and ``val_loss``/``val_<metric>``.
        Per-step values are in ``trainer.step_history``. The trained weights go back into the model
        at the end.

        Args:
            x: inputs (an array or a list of arrays), or an iterable of ``(x, y)`` batches.
            y: targets (an array or a list of arrays); None with a batch iterable.
            epochs: epochs to train (in all, with ``resume``).
            batch_size: rows per step (arrays only).
            validation_data: ``(xv, yv)`` evaluated after each epoch (``val_*`` entries).
            shuffle: reshuffle the rows every epoch (deterministic in the trainer's seed).
            checkpoint_dir: write a checkpoint there after every epoch.
            resume: continue from the newest checkpoint in ``checkpoint_dir``.
            verbose: show the progress bar (on a terminal) and print one line per epoch; default:
                the trainer's ``progress``.
            steps_per_epoch: batches per epoch for a one-shot batch iterator.
            callbacks: ``gf.callbacks`` objects, called in order.

        Returns:
            The history dict (see above).

        Raises:
            InputError: arrays with different row counts, an empty epoch, a one-shot iterator without
                ``steps_per_epoch``, inputs of the wrong shape or dtype.
            ConfigError: a bad ``steps_per_epoch`` or a callback that is not a ``Callback``.
            LoadError: ``resume`` found a checkpoint of another model.

        Example:
            ```python
            history = trainer.fit(x, y, epochs=5, batch_size=64, validation_data=(xv, yv),
                                  callbacks=[gf.callbacks.EarlyStopping(patience=2)])
            print(history["val_loss"][-1])
            ```
        """
        from tqdm.auto import tqdm

        if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
            raise ConfigError(f"fit: steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
        if resume and checkpoint_dir and _ckpt.latest_checkpoint(checkpoint_dir):
            self.load_checkpoint(checkpoint_dir)
        # a resumed run finishes the planned total; a plain call trains that many more epochs (a second
        # fit(epochs=N) would otherwise silently do nothing)
        if not resume:
            epochs = self.epoch + epochs
        stream = self._stream(x, y, epochs - self.epoch, steps_per_epoch)
        verbose = self.progress if verbose is None else verbose
        history: dict[str, list[float]] = getattr(self, "history", None) or {}
        self.history = history
        cbs = _callbacks.CallbackList(callbacks, self)
        own_batches = not self._is_batch_iterable(x, y)
        self.stop_training = False
        cbs.train_begin()
        while self.epoch < epochs and not self.stop_training:
            cbs.epoch_begin(self.epoch)
            batches, total = self._batches(x, y, batch_size, shuffle, stream, steps_per_epoch)
            # disable=None: tqdm draws only on a terminal; a log file gets just the per-epoch lines
            bar = tqdm(total=total, desc=f"epoch {self.epoch + 1}/{epochs}", disable=None if verbose else True,
                       leave=False)
            bar.update(self.batch_in_epoch)
            live = not bar.disable
            # Per step only device values are kept: a float() per step would wait for each step to
            # finish before the next is dispatched (the old fit was 1.5-5x a plain loop for that).
            # They are fetched once, at the end of the epoch.
            outs, sizes = [], []
            shown = started = time.perf_counter()
            skip = self.batch_in_epoch
            per_step = cbs.per_step
            for bi, (bx, by) in enumerate(batches):
                if bi < skip:
                    continue  # resumed mid-epoch: these batches were trained before the checkpoint
                if own_batches:  # lists of arrays cut by _batches: no conversion needed
                    out = self._step(bx, by)
                    sizes.append(bx[0].shape[0])
                else:
                    out = self._step(_as_batch(bx), _as_batch(by))
                    sizes.append(_batch_rows(bx))
                outs.append(out)
                self.batch_in_epoch += 1
                if per_step:
                    cbs.step_end(self.step, out)
                    if self.stop_training:
                        break
                if live:
                    bar.update(1)
                    now = time.perf_counter()
                    if now - shown > 0.5:  # the loss on screen twice a second: one sync each time
                        bar.set_postfix(loss=f"{float(out['loss']):.4f}")
                        shown = now
            bar.close()
            if not outs and skip == 0:
                raise InputError(f"fit: epoch {self.epoch + 1} got no batches from the data",
                                 hint="an iterable of (x, y) batches must yield at least one batch per epoch")
            logs = self._epoch_logs(outs, sizes, time.perf_counter() - started)
            if validation_data is not None:
                for k, v in self.evaluate(*validation_data, batch_size=max(batch_size, 256)).items():
                    logs[f"val_{k}"] = v
            for k, v in logs.items():
                history.setdefault(k, []).append(v)
            self.epoch += 1
            self.batch_in_epoch = 0
            if verbose:
                print(f"epoch {self.epoch}/{epochs}: " + ", ".join(f"{k}={_fmt(v[-1])}" for k, v in history.items()))
            if checkpoint_dir:
                self.save_checkpoint(checkpoint_dir)
            cbs.epoch_end(self.epoch - 1, logs)
        cbs.train_end()
        self._write_back()
        return history

    def _epoch_logs(self, outs: list, sizes: list, seconds: float) -> dict[str, float]:
        """An epoch's history entries from its steps' device outputs (one transfer): example-weighted
        means of loss, metrics and grad norm, the last learning rate, throughput and step time."""
        if not outs:
            return {}
        w = np.asarray(sizes, dtype=np.float64)
        logs: dict[str, float] = {}
        # one jitted stack of every step's scalars, then one transfer per key: fetching each scalar
        # on its own cost ~0.3 ms a step, jnp.stack from Python ~0.3 ms per 64 scalars
        _, x64 = _jax_step_modules()
        with x64():
            stacked = _stack_logs()(outs)
        for k in outs[0]:
            col = np.asarray(self._host(stacked[k]), dtype=np.float64)
            self.step_history.setdefault(k, []).extend(col.tolist())
            logs[k] = float(col[-1]) if k == "lr" else float((col * w).sum() / max(w.sum(), 1.0))
        self.step_losses.extend(self.step_history["loss"][-len(outs):])
        logs[TIMING_KEYS[0]] = float(w.sum() / seconds) if seconds > 0 else float("nan")
        logs[TIMING_KEYS[1]] = 1e3 * seconds / len(outs)
        return logs

    @staticmethod
    def _is_batch_iterable(x, y) -> bool:
        return y is None and x is not None and not isinstance(x, np.ndarray)

    def _stream(self, x, y, epochs_left: int, steps_per_epoch):
        """For batch iterables: the one iterator all epochs share (``steps_per_epoch``), or None
        (re-iterated per epoch). A one-shot iterator without it is refused when it must feed
        several epochs."""
        if not self._is_batch_iterable(x, y):
            return None
        one_shot = iter(x) is x
        if steps_per_epoch is not None:
            return _Stream(x, one_shot)
        if one_shot and epochs_left > 1:
            raise InputError(f"fit(epochs={epochs_left}) got a one-shot iterator ({type(x).__name__}): it can be "
                             "iterated only once, so epochs after the first would train nothing",
                             hint="pass steps_per_epoch=N (each epoch takes the next N batches), a re-iterable "
                                  "(a list of (x, y) batches, or an object whose __iter__ restarts), or epochs=1")
        return None

    def _batches(self, x, y, batch_size, shuffle, stream=None, steps_per_epoch=None):
        if stream is not None:
            return stream.take(steps_per_epoch, self.epoch), steps_per_epoch
        if self._is_batch_iterable(x, y):
            try:
                total = len(x)
            except TypeError:
                total = None
            return ((b[0], b[1]) for b in x), total
        xs, ys = self._arrays(x, y, "fit")
        n = len(xs[0])
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(n) if shuffle else np.arange(n))
        total = math.ceil(n / batch_size)

        def gen():
            for i in range(total):
                idx = order[i * batch_size:(i + 1) * batch_size]
                if self._dist is not None:  # lazy rows: each process reads only its devices' part
                    yield [RowView(a, idx) for a in xs], [RowView(a, idx) for a in ys]
                elif not shuffle:  # in order: views, no copy
                    sl = slice(i * batch_size, (i + 1) * batch_size)
                    yield [a[sl] for a in xs], [a[sl] for a in ys]
                else:
                    yield [a[idx] for a in xs], [a[idx] for a in ys]
        return gen(), total

    def evaluate(self, x, y, *, batch_size: int = 256) -> dict[str, float]:
        """Mean loss and metrics in eval mode (weighted by batch size).

        Args:
            x: inputs (an array or a list of arrays).
            y: targets (an array or a list of arrays).
            batch_size: rows per evaluation call.

        Returns:
            ``{"loss": ..., "<metric>": ...}`` as floats.

        Raises:
            InputError: inputs and targets have different row counts, or the wrong shape or dtype.

        Example:
            ```python
            trainer.evaluate(x_test, y_test)     # {'loss': 0.11, 'accuracy': 0.967}
            ```
        """
        from graphforge.runtimes.jax import x64

        xs, ys = self._arrays(x, y, "evaluate")
        n = len(xs[0])
        names = self.eval_graph.output_names
        sums = {k: 0.0 for k in names if not k.startswith("update:")}
        params = {**self._params, **self._buffers}
        with x64():
            for i in range(0, n, batch_size):
                arrays = [a[i:i + batch_size] for a in xs] + [a[i:i + batch_size] for a in ys]
                fn, bound = self._eval_fn(self.eval_graph, arrays)
                outs = fn(params, self._device_inputs(bound))
                m = len(arrays[0])
                for k, o in zip(names, outs):
                    if k in sums:
                        sums[k] += float(self._host(o)) * m
        return {k: v / max(n, 1) for k, v in sums.items()}

    def predict(self, x, *, batch_size: int = 1024):
        """Model outputs in eval mode.

        Args:
            x: inputs (an array or a list of arrays).
            batch_size: rows per call.

        Returns:
            NumPy: one array, or a list for several outputs.

        Raises:
            InputError: the inputs have the wrong shape or dtype.

        Example:
            ```python
            labels = trainer.predict(x_test).argmax(-1)
            ```
        """
        from graphforge.runtimes.jax import x64

        xs = _as_list(x, self._n_inputs, "predict", "inputs")
        n = _rows(xs, "predict")
        params = {**self._params, **self._buffers}
        chunks = []
        with x64():
            for i in range(0, max(n, 1), batch_size):  # no rows: one empty batch gives typed empty outputs
                fn, bound = self._eval_fn(self.graph, [a[i:i + batch_size] for a in xs])
                chunks.append([self._host(o) for o in fn(params, self._device_inputs(bound))])
        outs = [np.concatenate([c[j] for c in chunks]) for j in range(len(chunks[0]))]
        return outs[0] if len(outs) == 1 else outs

    def _arrays(self, x, y, what: str) -> tuple[list, list]:
        """Inputs and targets as lists of arrays with one common number of rows (InputError if not)."""
        if y is None and self.target_specs:
            raise InputError(f"{what}(x, y) needs the targets y ({len(self.target_specs)} array(s) like "
                             f"{', '.join(str(getattr(t, 'type', t)) for t in self.target_specs)})",
                             hint="pass them as the second argument, or x as an iterable of (x, y) batches")
        xs = _as_list(x, self._n_inputs, what, "inputs")
        ys = [] if y is None else _as_list(y, len(self.target_specs), what, "targets")
        _rows(xs + ys, what)
        return xs, ys

    # ---- checkpoints ----------------------------------------------------------------------------
    def _signature(self) -> dict:
        return {n: [list(np.shape(v)), str(np.asarray(v).dtype)] for n, v in self.params.items()}

    def save_checkpoint(self, directory: str, keep: int | None = None) -> str:
        """Write params, optimizer state, step/epoch/RNG state atomically into ``directory``.

        Args:
            directory: the checkpoint directory (created if needed).
            keep: how many of the newest checkpoints to keep (default: the trainer's ``keep_checkpoints``).

        Returns:
            The path of the checkpoint written.

        Raises:
            LoadError: the directory cannot be written.

        Example:
            ```python
            path = trainer.save_checkpoint("ckpt")
            trainer.load_checkpoint("ckpt")
            ```
        """
        keep = self.keep_checkpoints if keep is None else keep
        import jax

        leaves, treedef = jax.tree_util.tree_flatten(self._opt_state)
        leaves = [self._host(l) for l in leaves]  # (a collective for cross-process shards: all call it)
        meta = {"format": "graphforge-checkpoint/1", "step": self.step, "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch, "seed": self.seed, "treedef": str(treedef),
                "params": self._signature(), "history": getattr(self, "history", {}) or {},
                "step_losses": self.step_losses, "step_history": self.step_history}
        params = self.params
        if self._dist is None:
            return _ckpt.write_checkpoint(directory, self.step, params, leaves, meta, keep=keep)
        # several processes: written once, by process 0; the others wait until it is complete
        path = _ckpt.write_checkpoint(directory, self.step, params, leaves, meta, keep=keep,
                                      write=self._dist.is_writer)
        self._dist.barrier(f"graphforge-checkpoint-{self.step}")
        return path

    def load_checkpoint(self, directory: str) -> None:
        """Restore the newest checkpoint written by ``save_checkpoint`` in ``directory``.

        Args:
            directory: the checkpoint directory.

        Raises:
            LoadError: no checkpoint there, or it belongs to another model or optimizer.

        Example:
            ```python
            trainer.load_checkpoint("ckpt")      # weights, optimizer state, step and epoch
            ```
        """
        import jax
        import jax.numpy as jnp
        from graphforge.runtimes.jax import x64

        params, leaves, meta = _ckpt.read_checkpoint(directory)
        want = self._signature()
        if meta.get("params") != want:
            diff = sorted(set(want) ^ set(meta.get("params", {})))
            raise LoadError(f"checkpoint in {directory!r} does not match this model: "
                            + (f"params differ in names ({', '.join(diff[:6])})" if diff else "param shapes/dtypes differ"),
                            hint="load a checkpoint saved by a Trainer of the same model")
        _, treedef = jax.tree_util.tree_flatten(self._opt_state)
        if str(treedef) != meta.get("treedef") or len(leaves) != treedef.num_leaves:
            raise LoadError(f"checkpoint in {directory!r} holds the state of a different optimizer")
        with x64():
            self._params = {n: jnp.asarray(params[n]) for n in self.trainable}
            self._buffers = {n: jnp.asarray(params[n]) for n in self.buffers}
            self._opt_state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(l) for l in leaves])
        if self._dist is not None:
            self._place_state()
        self.step, self.epoch = int(meta["step"]), int(meta["epoch"])
        self.batch_in_epoch = int(meta.get("batch_in_epoch", 0))
        self.history = {k: list(v) for k, v in meta.get("history", {}).items()}
        self.step_losses = list(meta.get("step_losses", []))
        self.step_history = {k: list(v) for k, v in meta.get("step_history", {}).items()}
        self._write_back()


_STEP_MODULES: tuple = ()


def _jax_step_modules():
    """``(jax.numpy, x64)``, imported once: a function-level import costs ~50 µs per train step."""
    global _STEP_MODULES
    if not _STEP_MODULES:
        import jax.numpy as jnp
        from graphforge.runtimes.jax import x64
        _STEP_MODULES = (jnp, x64)
    return _STEP_MODULES


_STACK: list = []


def _stack_logs():
    """A jitted ``[{k: scalar}] * n -> {k: (n,) array}`` (compiled once per epoch length)."""
    if not _STACK:
        import jax
        import jax.numpy as jnp
        _STACK.append(jax.jit(lambda outs: {k: jnp.stack([o[k] for o in outs]) for k in outs[0]}))
    return _STACK[0]


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) >= 1e4 or (v and abs(v) < 1e-3) else f"{v:.4f}"


def _x64():
    from graphforge.runtimes.jax import x64
    return x64()


