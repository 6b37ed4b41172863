"""The model-file convention shared by ``graphforge compile``, ``show``, ``bench`` and ``train``.

A model file is a plain Python file executed as a module (not as ``__main__``, so an
``if __name__ == "__main__":`` block does not run). It declares, with module-level names:

* ``model``        an ``nn.Module`` instance, an ``nn.Module`` subclass (built with no arguments), a
                   function of Tensors (traced), or an already traced ``gf.Graph``;
                   or ``make_model()``, a zero-argument factory returning one of those
* ``inputs``       a ``gf.TensorSpec`` or a list of them (not needed when the model is a ``gf.Graph``)
* optional ``sample_inputs``  an array, a list of arrays or a dict name -> array (``--verify`` checks them)
* optional ``seed``           parameter initialisation seed (default 0)

``FILE.py:ATTR`` names another attribute as the model (``examples/mlp.py:MLP``); the same rules
apply to it. See docs/cli.md.
"""
from __future__ import annotations

import os
import runpy
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelFile", "split_target", "run_model_file", "load_model_file", "trace_model", "bind_batch",
           "batch_symbol", "user_frame", "declaration_line"]

_DEFAULT_NAMES = ("model", "make_model")


@dataclass
class ModelFile:
    """What a model file declared: the model object (not traced yet) and its input specs."""

    path: str
    attr: str                      # the attribute the model came from ("model", "make_model", ATTR)
    model: Any
    inputs: list = field(default_factory=list)
    sample_inputs: Any = None
    seed: int = 0
    namespace: dict = field(default_factory=dict, repr=False)


def split_target(target: str) -> tuple[str, str | None]:
    """``"dir/file.py:ATTR"`` -> ``("dir/file.py", "ATTR")``; a plain path gives ``(path, None)``."""
    head, sep, tail = target.rpartition(":")
    if sep and tail.isidentifier() and head:
        return head, tail
    return target, None


def user_frame(exc: BaseException, path: str) -> str:
    """``file:line: source`` of the innermost traceback frame inside ``path`` ('' when none is).

    That is the line of the user's own code that raised (or called into what raised)."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        text = (exc.text or "").strip()
        return f"{exc.filename}:{exc.lineno}" + (f": {text}" if text else "")
    want = os.path.abspath(path)
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == want:
            found = f"{path}:{frame.lineno}" + (f": {frame.line.strip()}" if frame.line else "")
    return found


def _describe_failure(what: str, exc: BaseException, path: str) -> str:
    where = user_frame(exc, path)
    message = f"{what} failed: {type(exc).__name__}: {exc}"
    return message + (f"\n  at {where}" if where else "")


def run_model_file(path: str, run_name: str = "__graphforge_model__") -> dict:
    """Execute the Python file at ``path`` and return its namespace.

    A missing file or one that raises becomes a :class:`LoadError` naming the user's line."""
    from graphforge.errors import LoadError

    if not os.path.exists(path):
        raise LoadError(f"model file {path!r} does not exist")
    if not os.path.isfile(path):
        raise LoadError(f"{path!r} is not a file")
    # Let the file import its siblings (``from layers import Block``), as ``python FILE.py`` would.
    directory = os.path.dirname(os.path.abspath(path))
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    try:
        return runpy.run_path(path, run_name=run_name)
    except SystemExit as exc:
        raise LoadError(f"running {path!r} called sys.exit({exc.code!r})",
                        hint="guard script code with `if __name__ == '__main__':`") from None
    except Exception as exc:  # noqa: BLE001 - the user's file failed; say where
        raise LoadError(_describe_failure(f"running {path!r}", exc, path)) from None
    finally:
        if added:
            try:
                sys.path.remove(directory)
            except ValueError:
                pass


def _materialise(obj: Any, name: str, path: str, *, factory: bool) -> Any:
    """Turn the attribute ``name`` into a model object: instantiate Module classes, call factories."""
    import inspect

    from graphforge.errors import LoadError
    from graphforge.ir.graph import Graph
    from graphforge.nn.module import Module

    def build(fn, label):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - the user's constructor failed
            raise LoadError(_describe_failure(f"{label} in {path!r}", exc, path)) from None

    if isinstance(obj, (Module, Graph)):
        return obj
    if isinstance(obj, type):
        if issubclass(obj, Module):
            return build(obj, f"building {name}()")
        raise LoadError(f"{path!r}: {name} is the class {obj.__name__}, not an nn.Module subclass")
    if not callable(obj):
        raise LoadError(f"{path!r}: {name} is a {type(obj).__name__}; expected an nn.Module, an nn.Module "
                        "subclass, a function of Tensors, a gf.Graph or a make_model() factory")
    try:
        positional = [p for p in inspect.signature(obj).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                      and p.default is p.empty]
    except (TypeError, ValueError):
        positional = [None]
    if factory or not positional:
        # make_model(), or any zero-argument callable: a factory; what it returns must be a model
        built = build(obj, f"calling {name}()")
        if callable(built) or isinstance(built, (Module, Graph)):
            return _materialise(built, f"{name}()", path, factory=False)
        raise LoadError(f"{path!r}: {name}() returned a {type(built).__name__}, not a model")
    return obj  # a function of Tensors: traced as it is


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def load_model_file(target: str, *, need_inputs: bool = True) -> ModelFile:
    """Run the model file ``target`` (``FILE.py`` or ``FILE.py:ATTR``) and pick out the model.

    Raises :class:`LoadError` for a missing file, a file that raises, a file without a model (naming
    the attributes looked for) or without ``inputs``."""
    from graphforge.errors import LoadError
    from graphforge.ir.graph import Graph
    from graphforge.ir.types import TensorSpec, TensorType

    path, attr = split_target(target)
    ns = run_model_file(path)
    names = (attr,) if attr else _DEFAULT_NAMES
    found = next((n for n in names if n in ns), None)
    if found is None:
        defined = sorted(k for k, v in ns.items() if not k.startswith("_") and not isinstance(v, type(os)))
        looked = " or ".join(f"`{n}`" for n in names)
        raise LoadError(f"{path!r} defines no {looked}" + (f" (it defines: {', '.join(defined[:12])})" if defined else ""),
                        hint="define `model` (an nn.Module, builder, function or gf.Graph) or `make_model()`, "
                             "or name the attribute as FILE.py:ATTR; see docs/cli.md")
    model = _materialise(ns[found], found, path, factory=found == "make_model")
    specs = []
    if "inputs" in ns:
        specs = _as_list(ns["inputs"])
        for i, spec in enumerate(specs):
            if not isinstance(spec, TensorType):
                raise LoadError(f"{path!r}: inputs[{i}] is {spec!r}, not a gf.TensorSpec",
                                hint="write inputs = gf.TensorSpec(('batch', 784), 'float32') or a list of them")
    elif isinstance(model, Graph):
        specs = [TensorSpec(v.type.shape, v.type.dtype, name=v.name) for v in model.inputs]
    elif need_inputs:
        raise LoadError(f"{path!r} defines a model ({found}) but no `inputs`",
                        hint="add inputs = gf.TensorSpec(('batch', ...), 'float32') (or a list, one per "
                             "argument of forward)")
    seed = ns.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise LoadError(f"{path!r}: seed must be an int, got {seed!r}")
    return ModelFile(path=path, attr=found, model=model, inputs=specs, sample_inputs=ns.get("sample_inputs"),
                     seed=seed, namespace=ns)


def batch_symbol(specs) -> str | None:
    """The symbol ``--batch`` binds: ``"batch"`` when an input uses it, else the first input's
    leading dim when that is a plain symbol."""
    from graphforge.ir.dims import dim_symbols

    symbols = [s for spec in specs for d in spec.shape if isinstance(d, str) for s in dim_symbols(d)]
    if "batch" in symbols:
        return "batch"
    if specs and specs[0].shape and isinstance(specs[0].shape[0], str) and "*" not in specs[0].shape[0]:
        return specs[0].shape[0]
    return None


def _subst_dim(dim, symbol: str, size: int):
    from graphforge.ir.dims import dim_product

    if not isinstance(dim, str) or symbol not in dim.replace(" ", "").split("*"):
        return dim
    parts = [p.strip() for p in dim.split("*")]
    return dim_product([size if p == symbol else int(p) if p.isdigit() else p for p in parts])


def _subst_attr(value, symbol: str, size: int):
    if isinstance(value, str):
        return _subst_dim(value, symbol, size)
    if isinstance(value, (list, tuple)):
        return type(value)(_subst_attr(v, symbol, size) for v in value)
    return value


def bind_batch(specs, size: int):
    """``(specs with the batch symbol replaced by size, the symbol)``; InputError when there is none."""
    from graphforge.errors import InputError
    from graphforge.ir.types import TensorSpec

    symbol = batch_symbol(specs)
    if symbol is None:
        raise InputError("--batch given, but no input has a symbolic batch dim "
                         f"({', '.join(str(s) for s in specs)})", hint="declare it as gf.TensorSpec(('batch', ...))")
    return [TensorSpec(tuple(_subst_dim(d, symbol, size) for d in s.shape), s.dtype, name=getattr(s, "name", None))
            for s in specs], symbol


def _bind_graph(graph, symbol: str, size: int):
    """A copy of a traced graph with ``symbol`` fixed to ``size`` everywhere (types and attrs),
    re-checked by the ``infer`` pass."""
    from graphforge.errors import GraphforgeError, InputError
    from graphforge.ir.types import TensorType
    from graphforge.passes.infer import infer

    g = graph.copy()
    for v in g.all_values():
        v.type = TensorType(tuple(_subst_dim(d, symbol, size) for d in v.type.shape), v.type.dtype)
    for node in g.nodes:
        node.attrs = {k: _subst_attr(a, symbol, size) for k, a in node.attrs.items()}
    try:
        infer(g)
    except GraphforgeError as exc:
        raise InputError(f"cannot fix {symbol}={size} in graph {graph.name!r}: {exc}") from None
    return g


def declaration_line(path: str, name: str) -> int | None:
    """The line of the last top-level ``name = ...`` / ``def name`` / ``class name`` in ``path``."""
    import ast

    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None
    line = None
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt.name == name:
            line = stmt.lineno
        targets = stmt.targets if isinstance(stmt, ast.Assign) else \
            [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            line = stmt.lineno
    return line


def _trace_from_file(mf: ModelFile, call):
    """Run ``call`` from a frame that belongs to the model file, at the line declaring the model.

    Nodes record the innermost stack frame outside graphforge as their source line. A model whose
    forward is the user's code gets that line anyway; a model assembled from library layers
    (``nn.seq().add(...)``) has no user frame on the stack under the CLI, and would otherwise be
    stamped with the CLI's caller. This way it is stamped with the line that declared it."""
    line = declaration_line(mf.path, mf.attr) or 1
    code = compile("\n" * (line - 1) + "__graphforge_result__ = __graphforge_call__()", mf.path, "exec")
    scope = {"__graphforge_call__": call}
    exec(code, scope)  # noqa: S102 - fixed trampoline text, no user input in it
    return scope["__graphforge_result__"]


def trace_model(mf: ModelFile, batch: int | None = None):
    """Trace the model in eval mode (``training=False``); ``batch`` fixes the batch symbol.

    An exception inside the user's ``forward`` becomes a :class:`LoadError` naming the user's line;
    graphforge's own errors (``ShapeError`` …) pass through unchanged (they already carry it)."""
    import graphforge as gf
    from graphforge.errors import GraphforgeError, LoadError

    specs = mf.inputs
    if batch is not None:
        specs, symbol = bind_batch(specs, batch)
    if isinstance(mf.model, gf.Graph):
        return mf.model if batch is None else _bind_graph(mf.model, symbol, batch)
    if not specs:
        raise LoadError(f"{mf.path!r}: `inputs` is empty; the model needs at least one gf.TensorSpec")
    try:
        return _trace_from_file(mf, lambda: gf.trace(mf.model, *specs, seed=mf.seed, training=False))
    except GraphforgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug in the user's forward(); show their line
        raise LoadError(_describe_failure(f"tracing {mf.attr} from {mf.path!r}", exc, mf.path)) from None
