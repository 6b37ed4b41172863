"""graphforge: a declarative deep-learning graph compiler.

Trace a model (``nn`` builder or ``nn.Module``) into a typed SSA graph, optimise it with passes,
and lower it to JAX/XLA or ONNX/onnxruntime::

    import graphforge as gf
    from graphforge import nn

    net = nn.seq().add(nn.Linear(784, 128)).add_fn(gf.relu).add(nn.Linear(128, 10))
    g = gf.trace(net, gf.TensorSpec(("batch", 784), "float32"), seed=0)
    outs = gf.run(gf.optimize(g), {"x": x}, backend="onnxruntime")
"""
from . import errors, ops
from .api import from_onnx, grad, optimize, run, save_onnx, to_onnx
from .api import memory_report, profile
from .errors import *  # noqa: F401,F403
from .ir import Graph, Node, TensorSpec, TensorType, Value, parse
from .ops import *  # noqa: F401,F403
from .params_io import load_params, save_params
from .summary import summary
from .trace import Tensor, trace
from . import nn  # noqa: E402  (nn builds on ops and trace)
from .nn.remat import checkpoint  # noqa: E402

from .version import __version__  # noqa: E402


def __getattr__(name):
    # gf.Trainer / gf.plot_history / gf.callbacks load graphforge.train on first use (it needs
    # jax/optax at run time)
    if name in ("Trainer", "plot_history", "callbacks"):
        from . import train
        return getattr(train, name)
    raise AttributeError(f"module 'graphforge' has no attribute {name!r}")


def __dir__():
    # the lazily loaded names (Trainer, plot_history) belong in dir(gf) like the eager ones
    return sorted(set(globals()) | set(__all__))

__all__ = (["errors", "ops", "nn", "from_onnx", "grad", "optimize", "save_onnx", "to_onnx", "Graph", "Node", "TensorSpec",
            "TensorType", "Value", "parse", "Trainer", "plot_history", "callbacks", "load_params", "save_params", "run", "summary", "Tensor", "trace",
            "__version__", "memory_report", "checkpoint", "profile"] + errors.__all__ + [n for n in ops.__all__ if n not in ("registry",)])

from .api import quantize  # noqa: E402  (post-training quantization, QDQ)
__all__ += ["quantize"]
from .host_memory import retain_host_memory  # noqa: E402  (opt-in glibc allocator thresholds)
__all__ += ["retain_host_memory"]
