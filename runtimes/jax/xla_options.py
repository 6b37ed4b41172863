"""XLA compiler options passed **per executable** (``jax.jit(..., compiler_options=...)``), never
through the process-wide ``XLA_FLAGS``: what graphforge turns on by default for a case, and the
validation of a user's own options (``gf.Trainer(..., xla_options={...})``).

The defaults today (measured in docs/benchmarks.md, "XLA:CPU compiler options"):

* a train step whose gradient graph rematerialises (``remat=...`` / ``nn.remat`` put
  ``optimization_barrier`` nodes in it) compiles on XLA:CPU with ``REMAT_CPU_OPTIONS``: XLA:CPU's
  ``cse_barrier_expander`` pass deletes the barriers early in its pipeline, after which CSE merges
  the recomputation back into the forward pass (the compiled step has the dots of a step without
  remat); with that pass disabled the recomputation survives, and the memory-minimising scheduler
  orders it so that the activations are actually freed — XLA's reported peak of the benchmark
  Transformer then drops to 0.55× (without the scheduler the peak does not move).
* a convolution network's train step — a gradient graph (``grad:`` outputs) with convolutions
  (``conv2d`` / ``conv_transpose2d``) and no ``attention`` (or ``softmax``: attention written by
  hand) or loop (``scan``, ``while_loop``) — compiles on XLA:CPU with ``CONV_CPU_OPTIONS``: no
  YNNPACK library fusions. jax 0.10's XLA:CPU hands dots and reductions to YNNPACK by default; in
  convolution networks' train steps those kernels are slower than XLA's own loop fusions (the
  pooling windows, batch-norm statistics and the small dots around the convolutions): LeNet's step
  0.79×, ResNet-8's 0.93×, four more small CNNs (pools, strided, batch norm, global average)
  0.68–0.87× with them off. Where attention or a recurrence is in the graph they pay: the
  Transformer 1.16×, the LSTM 1.35× and five conv-stem + Transformer-encoder hybrids 1.01–1.16×
  slower without them (even at 81 % of the FLOPs in convolutions) — so those graphs keep XLA's
  default, and so do graphs without convolutions (MLPs: 0.93–1.03× and 1.01–1.05× in three runs,
  i.e. nothing to gain). Forward-only (inference) graphs keep it too: there the same option measured
  LeNet 0.82× but ResNet-8 (batch norm folded) 1.17×. A user turns the default off with
  ``xla_options={"xla_cpu_experimental_ynn_fusion_type": None}``.

Every other ``xla_cpu_*`` option measured (oneDNN, XNNPACK fusions, fast math, single-threaded
Eigen, the optimisation presets, ...) did not pay on the benchmark train steps and is not set.
GPU/TPU executables get no default: their pipelines differ from XLA:CPU's and no GPU was available
to measure them (``benchmarks/gpu_check.py`` measures remat's XLA peak when one is lent).
"""
from __future__ import annotations

import difflib
from typing import Mapping

from graphforge.errors import ConfigError

__all__ = ["REMAT_CPU_OPTIONS", "CONV_CPU_OPTIONS", "KNOWN_OPTIONS", "check_xla_options", "step_options",
           "graph_options", "has_remat", "is_convnet_step"]

REMAT_CPU_OPTIONS: dict[str, object] = {
    "xla_disable_hlo_passes": "cse_barrier_expander",
    "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED",
}

CONV_CPU_OPTIONS: dict[str, object] = {
    # an empty list overrides XLA's default set of YNNPACK fusion types (dots and reductions)
    "xla_cpu_experimental_ynn_fusion_type": "",
}
_DEFAULT_NAMES = tuple(REMAT_CPU_OPTIONS) + tuple(CONV_CPU_OPTIONS)
_CONVOLUTIONS = frozenset({"conv2d", "conv_transpose2d"})
# ops whose kernels YNNPACK's fusions were measured to speed up (the attention products, a loop's
# per-step dots): a graph holding one keeps XLA's default fusions. ``softmax`` stands for attention
# written by hand (the Trainer does not run the fusion passes; a classifier's loss is a
# ``log_softmax``). Not ``matmul``: graphforge's gradient of every ``linear`` is written with it.
_DOT_HEAVY = frozenset({"attention", "softmax", "scan", "while_loop"})

# the options docs/benchmarks.md measured (for "did you mean" hints; XLA itself is the authority
# on what exists: check_xla_options asks it)
KNOWN_OPTIONS = (
    "xla_cpu_use_onednn", "xla_cpu_experimental_onednn_custom_call", "xla_cpu_experimental_onednn_fusion_type",
    "xla_cpu_use_xnnpack", "xla_cpu_experimental_xnn_fusion_type", "xla_cpu_experimental_xnn_graph_fusion_mode",
    "xla_cpu_experimental_ynn_fusion_type", "xla_cpu_enable_fast_math", "xla_cpu_enable_fast_min_max",
    "xla_cpu_multi_thread_eigen", "xla_cpu_opt_preset", "xla_cpu_scheduler_type",
    "xla_cpu_copy_insertion_use_region_analysis", "xla_cpu_parallel_codegen_split_count",
    "xla_cpu_use_fusion_emitters", "xla_cpu_experimental_enable_tiling_propagation", "xla_cpu_prefer_vector_width",
    "xla_disable_hlo_passes", "xla_backend_optimization_level", "xla_cpu_enable_concurrency_optimized_scheduler",
)

_CHECKED: set = set()


def check_xla_options(options: Mapping | None, where: str = "xla_options") -> dict:
    """``options`` as a plain dict, once XLA has accepted it: every name must be an XLA debug
    option and every value of its type (XLA answers by compiling a trivial function with them;
    the answer is cached). ``None`` → ``{}``; a value ``None`` is kept unchecked (it means "do not
    set this name", see ``step_options``).

    Raises:
        ConfigError: not a mapping of names to bool/int/float/str, an unknown option (with close
            matches) or a value XLA refuses (an enum spelling, a bool written as a string, ...).
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where} must be a dict of XLA option name -> value, not {type(options).__name__}",
                          hint='e.g. {"xla_cpu_use_onednn": True}')
    out = {}
    for k, v in options.items():
        if not isinstance(k, str) or not (v is None or isinstance(v, (bool, int, float, str))):
            raise ConfigError(f"{where}[{k!r}] = {v!r}: XLA options are names (str) with bool/int/float/str "
                              "values (None: leave graphforge's default for that name unset)")
        if v is None and k not in _DEFAULT_NAMES:
            raise ConfigError(f"{where}[{k!r}] = None removes one of graphforge's default options, but {k!r} "
                              "is none of them", hint=f"defaults that can be removed: {', '.join(_DEFAULT_NAMES)}")
        out[k] = v
    given = {k: v for k, v in out.items() if v is not None}
    key = tuple(sorted((k, type(v).__name__, v) for k, v in given.items()))
    if given and key not in _CHECKED:
        _probe(given, where)
        _CHECKED.add(key)
    return out


def _probe(options: dict, where: str) -> None:
    import jax
    import numpy as np

    try:
        jax.jit(lambda a: a + 1, compiler_options=options).lower(np.float32(0)).compile()
    except Exception as e:  # XLA's refusal is a JaxRuntimeError (INVALID_ARGUMENT: ...)
        msg = str(e).split("INVALID_ARGUMENT:", 1)[-1].strip()
        bad = [k for k in options if repr(k) in msg or k in msg]
        near = difflib.get_close_matches(bad[0], KNOWN_OPTIONS, n=3) if bad else []
        hint = (f"did you mean {', '.join(near)}?" if near else
                "XLA_FLAGS=--help python -c 'import jax; jax.numpy.ones(1)' lists XLA's options")
        raise ConfigError(f"{where}: XLA refused {options!r}: {msg}", hint=hint) from None


def has_remat(graph) -> bool:
    """Whether a gradient graph rematerialises (the remat pass's barriers are in it)."""
    return any(n.op == "optimization_barrier" for n in graph.walk())


def is_convnet_step(graph) -> bool:
    """Whether a graph is a convolution network's gradient (a train step: ``gf.grad`` outputs, named
    ``grad:<param>``) — it convolves (``conv2d`` / ``conv_transpose2d``) with no ``attention``,
    ``softmax`` or loop (``scan``, ``while_loop``) anywhere in it (regions included)."""
    from graphforge.passes.autodiff import GRAD_PREFIX

    if not any(name.startswith(GRAD_PREFIX) for name in graph.output_names):
        return False
    ops = {n.op for n in graph.walk()}
    return bool(ops & _CONVOLUTIONS) and not ops & _DOT_HEAVY


def step_options(user: Mapping, *, remat: bool, platform: str, convnet: bool = False) -> dict:
    """The compiler options of one executable: graphforge's defaults for the case (on ``platform``
    ``"cpu"``: ``REMAT_CPU_OPTIONS`` when it rematerialises, ``CONV_CPU_OPTIONS`` for a
    convolution network's train step) updated with the user's (already checked) ``user``; a user
    value of ``None`` removes a default instead of setting it."""
    opts = {}
    if platform == "cpu":
        opts.update(REMAT_CPU_OPTIONS if remat else {})
        opts.update(CONV_CPU_OPTIONS if convnet else {})
    for k, v in user.items():
        if v is None:
            opts.pop(k, None)
        else:
            opts[k] = v
    return opts


def graph_options(graph, user: Mapping | None = None, *, platform: str) -> dict:
    """``step_options`` for the executable that runs ``graph``: its traits read from the graph."""
    return step_options(user or {}, remat=has_remat(graph), platform=platform, convnet=is_convnet_step(graph))
