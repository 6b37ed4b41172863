"""nn.Module: the burn/PyTorch-style way to declare models.

Submodules and Parameters assigned as attributes are registered under hierarchical names
(``encoder.layers.0.attn.q_proj.weight``); calling a module inside ``gf.trace`` scopes the nodes it
emits with its path. A module called twice shares its parameters.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from ..errors import TraceError
from ..trace.builder import active_builder
from .parameter import Parameter

__all__ = ["Module", "Sequential", "ModuleList", "Lambda", "seq"]


class Module:
    """Base class of every layer and model. Subclasses define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_gf_path", None)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_modules" not in self.__dict__:
            raise TraceError(f"{type(self).__name__}.__init__ must call super().__init__() before "
                             f"assigning attributes (while setting {name!r})")
        self._modules.pop(name, None)
        self._parameters.pop(name, None)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, Module) for v in value):
            value = ModuleList(value)  # plain lists of layers register like ModuleList
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._modules.pop(name, None)
        self._parameters.pop(name, None)
        object.__delattr__(self, name)

    # ---- structure -----------------------------------------------------------------------
    def named_modules(self, prefix: str = "", _seen: set | None = None) -> Iterator[tuple[str, "Module"]]:
        seen = _seen if _seen is not None else set()
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator["Module"]:
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "", include_buffers: bool = True) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        for path, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) in seen or (not include_buffers and not p.trainable):
                    continue
                seen.add(id(p))
                yield (f"{path}.{name}" if path else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters(include_buffers=False):
            yield p

    def num_parameters(self) -> int:
        total = 0
        for p in self.parameters():
            n = 1
            for d in p.shape:
                n *= d
            total += n
        return total

    # ---- weights -------------------------------------------------------------------------
    def state_dict(self, seed: int = 0) -> dict:
        """Every parameter and buffer as a NumPy array by PyTorch-style name (``layer1.weight``).
        Values a module has not been given (by ``load_state_dict`` or ``Parameter(array)``) are
        the ones ``gf.trace(self, ..., seed=seed)`` initialises."""
        from .state import state_dict
        return state_dict(self, seed)

    def load_state_dict(self, state, strict: bool = True):
        """Set the weights: ``state`` is a dict name -> array (NumPy, or PyTorch tensors), or the
        path of a .safetensors/.npz file (PyTorch's names are understood for the layers graphforge
        mirrors; see ``graphforge.nn.state``). Later traces use these values. ``strict``: missing or
        unexpected names raise ``gf.StateDictError`` (else they are returned, like PyTorch's
        ``IncompatibleKeys``); shape/dtype mismatches always raise, and leave the module unchanged."""
        from .state import load_state_dict
        return load_state_dict(self, state, strict)

    # ---- modes ---------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    # ---- calling -------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise TraceError(f"{type(self).__name__} defines no forward(); subclasses of nn.Module must "
                         "implement forward(self, ...)")

    def __call__(self, *args, **kwargs):
        builder = active_builder()
        if builder is None:
            raise TraceError(f"{type(self).__name__} was called outside gf.trace: graphforge models are "
                             "declarations", hint="build a graph with g = gf.trace(model, "
                             "gf.TensorSpec(shape, dtype)) and run it with gf.run(g, inputs)")
        if self._gf_path is None:
            _adopt(builder, self)
        with builder.scope(self._gf_path):
            return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + (")" if len(lines) == 1 else "\n)")


def _adopt(builder, module: Module) -> None:
    """Name a module met during a trace that is not an attribute of the traced model (e.g. a
    function closing over layers): its tree gets a fresh prefix and its parameters register under it."""
    parent = builder.current_scope
    stem = type(module).__name__.lower()
    prefix = f"{parent}.{stem}" if parent else stem
    taken = {m._gf_path for m in builder.adopted}
    n = 0
    while prefix in taken or any(k.startswith(prefix + ".") for k in builder.graph.param_values):
        n += 1
        prefix = f"{parent}.{stem}{n}" if parent else f"{stem}{n}"
    for path, sub in module.named_modules(prefix):
        if sub._gf_path is None:
            object.__setattr__(sub, "_gf_path", path)
            builder.adopted.append(sub)
    for name, param in module.named_parameters(prefix):
        if id(param) not in builder.param_names:
            builder.register_param(param, name, param.materialize(name, builder.seed))


class Lambda(Module):
    """A parameter-free function as a module (what ``seq().add_fn`` stores).

    Args:
        fn: a function of Tensors, e.g. ``gf.relu`` or ``lambda x: x * 2``.

    Example:
        ```python
        net = nn.seq().add(nn.Lambda(gf.relu))     # same as .add_fn(gf.relu)
        ```
    """

    def __init__(self, fn: Callable):
        super().__init__()
        object.__setattr__(self, "fn", fn)

    def forward(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))


class _ModuleSeq(Module):
    """The list behaviour Sequential and ModuleList share: children registered as ``0``, ``1``, ...
    (PyTorch's naming), ``len``, indexing (negative indices and slices too) and iteration."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self._append(m)

    def _append(self, module: Module) -> None:
        if not isinstance(module, Module):
            raise TraceError(f"{type(self).__name__} holds nn.Module instances, got {type(module).__name__}",
                             hint="wrap a plain function with nn.Lambda(fn) (Sequential.add_fn does it for you)")
        setattr(self, str(len(self._modules)), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index):
        items = list(self._modules.values())
        if isinstance(index, slice):
            return type(self)(items[index]) if type(self) is ModuleList else Sequential(*items[index])
        try:
            return items[index]
        except IndexError:
            raise IndexError(f"{type(self).__name__} index {index} out of range (it holds {len(items)})") from None
        except TypeError:
            raise TypeError(f"{type(self).__name__} indices are integers or slices, got "
                            f"{type(index).__name__}") from None

    def __iter__(self):
        return iter(list(self._modules.values()))


class Sequential(_ModuleSeq):
    """Modules applied in order; children are named ``0``, ``1``, ... (PyTorch's naming)."""

    def __init__(self, *layers):
        super().__init__()
        for layer in layers:
            self.add(layer)

    def add(self, module: "Module | Callable") -> "Sequential":
        """Append a module (tch-rs style); returns self so calls chain."""
        if not isinstance(module, Module):
            if callable(module):
                return self.add_fn(module)
            raise TraceError(f"Sequential.add expects a Module, got {type(module).__name__}")
        self._append(module)
        return self

    def add_fn(self, fn: Callable) -> "Sequential":
        """Append a plain function such as ``gf.relu``; returns self."""
        self._append(Lambda(fn))
        return self

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x


class ModuleList(_ModuleSeq):
    """A list of modules registered as ``0``, ``1``, ...; iterate and index it in ``forward``."""

    def append(self, module: Module) -> "ModuleList":
        self._append(module)
        return self

    def extend(self, modules) -> "ModuleList":
        for m in modules:
            self._append(m)
        return self

    def forward(self, *args, **kwargs):
        raise TraceError("ModuleList has no forward(); iterate over it inside your module's forward()")


def seq(*layers) -> Sequential:
    """``nn.seq().add(nn.Linear(784, 128)).add_fn(gf.relu)`` — the tch-rs builder."""
    return Sequential(*layers)
