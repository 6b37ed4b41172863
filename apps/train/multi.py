"""``MultiTrainer``: several models, several optimizers, one jitted step per task — a GAN's
generator/discriminator, teacher/student, actor/critic — with checkpoints covering all of them.

    mt = MultiTrainer({"generator": G, "discriminator": D}, {
        "discriminator": Task(d_loss, [real_spec, z_spec], optax.adam(5e-4, b1=0.5)),
        "generator": Task(g_loss, [z_spec], optax.adam(1e-3, b1=0.5))}, seed=0)
    d = mt.step("discriminator", real, z)      # updates the discriminator's params only
    g = mt.step("generator", z)                # updates the generator's params only
    mt.save_checkpoint("ckpt"); mt.load_checkpoint("ckpt"); mt.write_back()

A task's ``loss(models, *inputs)`` gets the models as attributes (``models.generator(z)``) and
returns a scalar Tensor; it is traced once (training mode) with every model's params, named
``<model>.<param>`` (``generator.fc.weight``), and differentiated with respect to the params of
the model it trains (``Task.model``, default: the task's name) only. Every task has its own optax
optimizer state. ``write_back()`` puts the trained weights into the ``nn.Module`` objects, so
``gf.trace(G, ...)`` exports the trained generator.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, InputError, LoadError
from ..nn.module import Module
from ..trace.tracer import trace
from . import checkpoint as _ckpt
from .optimizers import resolve_optimizer
from .trainer import _scalar_result, _specs, step_key

__all__ = ["Task", "MultiTrainer", "player_step"]


class Task:
    """One optimisation step: ``loss(models, *inputs) -> scalar``, its input specs, its optimizer
    (an optax transformation or name) and the model whose params it trains (default: its name)."""

    def __init__(self, loss: Callable, inputs, optimizer, model: str | None = None):
        self.loss, self.inputs, self.optimizer, self.model = loss, _specs(inputs), optimizer, model


class _Holder(Module):
    """The models as attributes (so their params are named ``<model>.*``), calling a task's loss."""

    def __init__(self, models: Mapping[str, Module], loss: Callable):
        super().__init__()
        for name, m in models.items():
            setattr(self, name, m)
        object.__setattr__(self, "_loss", loss)

    def forward(self, *xs):
        return _scalar_result("Task loss", "loss", self._loss(self, *xs))


def player_step(loss_graph, names: Sequence[str], optimizer, donate: bool = True):
    """A jitted ``step(params, opt_state, inputs) -> (params, opt_state, loss)`` over a traced scalar
    loss graph: ``params`` holds every param and buffer of the graph; only ``names`` are updated
    (with ``optimizer``), buffers take the graph's ``update:`` outputs, the rest is read only.
    ``donate``: the step reuses the buffers of ``params``/``opt_state`` (they are invalid after it)."""
    import jax
    import optax

    from graphforge.api import grad
    from graphforge.runtimes.jax import lower

    grad_graph = grad(loss_graph, wrt=list(names), keep_outputs=True)
    fwd = lower(grad_graph, {}, precision="default")
    out_names = grad_graph.output_names
    gi = {n[len("grad:"):]: i for i, n in enumerate(out_names) if n.startswith("grad:")}
    ui = {n[len("update:"):]: i for i, n in enumerate(out_names) if n.startswith("update:")}

    def step(params, opt_state, inputs):
        outs = fwd(params, inputs)
        mine = {n: params[n] for n in names}
        updates, opt_state = optimizer.update({n: outs[gi[n]] for n in names}, opt_state, mine)
        new = {**params, **optax.apply_updates(mine, updates)}
        new.update({b: outs[i] for b, i in ui.items()})
        return new, opt_state, outs[0]

    # graphforge's per-graph XLA:CPU defaults (remat, convolutions: xla_options.py)
    from graphforge.runtimes.jax.xla_options import graph_options
    opts = graph_options(grad_graph, platform=jax.default_backend())
    return jax.jit(step, donate_argnums=(0, 1) if donate else (), compiler_options=opts or None)


class MultiTrainer:
    """Train ``models`` (name -> ``nn.Module``) with ``tasks`` (name -> :class:`Task`); see the module
    docstring. Shapes are static (one compile per task): give specs with fixed sizes.

    Args:
        models: name -> ``nn.Module``.
        tasks: name -> ``Task(loss_fn, specs, optimizer, model=)``.
        seed: parameter initialisation.
        keep_checkpoints: how many checkpoints to keep.
    """

    def __init__(self, models: Mapping[str, Module], tasks: Mapping[str, Task], *, seed: int = 0,
                 keep_checkpoints: int = 3):
        import jax.numpy as jnp

        from graphforge.runtimes.jax import x64

        if not tasks:
            raise ConfigError("MultiTrainer needs at least one task")
        for name, m in models.items():
            if not isinstance(m, Module):
                raise ConfigError(f"MultiTrainer: model {name!r} is a {type(m).__name__}, not an nn.Module")
        self.models, self.seed, self.keep_checkpoints = dict(models), seed, keep_checkpoints
        self.tasks = dict(tasks)
        self.steps = {t: 0 for t in self.tasks}
        self._fns, self._names, self._opts, self._rng_at = {}, {}, {}, {}
        graphs = {}
        for tname, task in self.tasks.items():
            target = task.model or tname
            if target not in self.models:
                raise ConfigError(f"MultiTrainer: task {tname!r} trains model {target!r}, which is not one of "
                                  f"{sorted(self.models)}", hint="pass Task(..., model=<one of the models>)")
            if not task.inputs:
                raise ConfigError(f"MultiTrainer: task {tname!r} needs input specs")
            g = trace(_Holder(self.models, task.loss), *task.inputs, seed=seed, training=True, name=tname)
            names = [n for n in g.trainable_names if n.startswith(target + ".")]
            if not names:
                raise ConfigError(f"MultiTrainer: task {tname!r}'s loss does not use model {target!r}'s params")
            opt = resolve_optimizer(task.optimizer)
            graphs[tname], self._names[tname], self._opts[tname] = g, names, opt
            self._rng_at[tname] = [v.name for v in g.inputs].index("rng") if "rng" in [v.name for v in g.inputs] else None
            self._fns[tname] = player_step(g, names, opt)
        # one value per param name across tasks (all tasks trace the same models with the same seed)
        with x64():
            self._params = {}
            for g in graphs.values():
                for n, v in g.params.items():
                    if g.param_values[n].kind in ("param", "buffer"):
                        self._params.setdefault(n, jnp.asarray(v))
            self._opt_state = {t: self._opts[t].init({n: self._params[n] for n in self._names[t]})
                               for t in self.tasks}
        self._graphs = graphs

    # ---- steps ----------------------------------------------------------------------------------
    def step(self, task: str, *inputs) -> float:
        """One jitted step of ``task`` on ``inputs`` (arrays in the order of its specs); returns the
        loss as a device scalar (``float()`` it when you log it: that waits for the step)."""
        from graphforge.runtime import bind_inputs
        from graphforge.runtimes.jax import x64

        if task not in self._fns:
            raise InputError(f"MultiTrainer: no task {task!r}; the tasks are {sorted(self._fns)}")
        arrays = list(inputs)
        if self._rng_at[task] is not None:
            arrays.insert(self._rng_at[task], step_key(self.seed, sum(self.steps.values())))
        bound, _ = bind_inputs(self._graphs[task], arrays)  # InputError naming a wrong input
        with x64():
            self._params, self._opt_state[task], loss = self._fns[task](self._params, self._opt_state[task],
                                                                       tuple(bound))
        self.steps[task] += 1
        return loss

    # ---- weights --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every model's params and buffers by ``<model>.<name>`` (NumPy)."""
        return {n: np.asarray(v) for n, v in self._params.items()}

    def write_back(self) -> None:
        """Put the trained weights into the ``nn.Module`` objects (``gf.trace`` then sees them)."""
        sd = self.state_dict()
        for name, m in self.models.items():
            pre = name + "."
            m.load_state_dict({k[len(pre):]: v for k, v in sd.items() if k.startswith(pre)}, strict=False)

    # ---- checkpoints ----------------------------------------------------------------------------
    def _signature(self) -> dict:
        return {n: [list(v.shape), str(v.dtype)] for n, v in self._params.items()}

    def save_checkpoint(self, directory: str) -> str:
        """Every model's params and every task's optimizer state and step count, atomically."""
        import jax

        leaves, treedefs = [], {}
        for t in self.tasks:
            ls, td = jax.tree_util.tree_flatten(self._opt_state[t])
            treedefs[t] = [str(td), len(ls)]
            leaves.extend(np.asarray(x) for x in ls)
        meta = {"format": "graphforge-multi-checkpoint/1", "steps": self.steps, "seed": self.seed,
                "treedefs": treedefs, "params": self._signature()}
        return _ckpt.write_checkpoint(directory, sum(self.steps.values()), self.state_dict(), leaves, meta,
                                      keep=self.keep_checkpoints)

    def load_checkpoint(self, directory: str) -> None:
        """Restore a ``save_checkpoint`` of the same models and tasks (LoadError otherwise)."""
        import jax
        import jax.numpy as jnp

        from graphforge.runtimes.jax import x64

        params, leaves, meta = _ckpt.read_checkpoint(directory)
        if meta.get("format") != "graphforge-multi-checkpoint/1" or meta.get("params") != self._signature():
            raise LoadError(f"checkpoint in {directory!r} is not one of this MultiTrainer's models",
                            hint="load a checkpoint saved by a MultiTrainer of the same models and tasks")
        states, at = {}, 0
        for t in self.tasks:
            _, td = jax.tree_util.tree_flatten(self._opt_state[t])
            want = meta.get("treedefs", {}).get(t)
            if want != [str(td), td.num_leaves]:
                raise LoadError(f"checkpoint in {directory!r}: task {t!r} has a different optimizer state")
            with x64():
                states[t] = jax.tree_util.tree_unflatten(td, [jnp.asarray(x) for x in leaves[at:at + td.num_leaves]])
            at += td.num_leaves
        with x64():
            self._params = {n: jnp.asarray(params[n]) for n in self._params}
        self._opt_state = states
        self.steps = {t: int(meta["steps"][t]) for t in self.tasks}
        self.write_back()
