"""What the docstring-coverage test checks, as functions (the test and the docs share them).

Two tiers:

* **every public name** (``__all__`` of ``graphforge``, ``graphforge.nn``, ``nn.functional``,
  ``nn.init``, ``graphforge.train`` and its ``callbacks``, ``graphforge.cli``) has its own docstring;
  a data constant has an attribute docstring (a string literal right after its assignment), and
  every named argument of a function or constructor is mentioned in it;
* **the entry points a user starts from** (:data:`FULL_DOCS`) also say what they return (a
  ``Returns:`` section, unless they return nothing), what they raise (``Raises:``) and show a short
  ``Example:``.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys

__all__ = ["NAMESPACES", "FULL_DOCS", "public_names", "problems", "full_doc_problems"]

NAMESPACES = ("graphforge", "graphforge.nn", "graphforge.nn.functional", "graphforge.nn.init",
              "graphforge.train", "graphforge.train.callbacks", "graphforge.cli")

# the names a user meets first: documented with Returns/Raises/Example sections too
FULL_DOCS = (
    [f"graphforge.{n}" for n in ("trace", "optimize", "run", "to_onnx", "save_onnx", "from_onnx", "grad",
                                   "summary", "save_params", "load_params", "parse", "Trainer", "plot_history")]
    + [f"graphforge.nn.init.{n}" for n in ("fans", "zeros", "ones", "constant", "normal", "uniform", "trunc_normal",
                                             "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal",
                                             "uniform_fan_in", "resolve")]
    + [f"graphforge.nn.functional.{n}" for n in ("cross_entropy", "mse_loss", "binary_cross_entropy_with_logits",
                                                   "accuracy", "nll_loss")]
    + [f"graphforge.train.callbacks.{n}" for n in ("EarlyStopping", "BestCheckpoint", "CSVLogger", "TensorBoard",
                                                     "LambdaCallback")]
    + [f"graphforge.Trainer.{n}" for n in ("fit", "evaluate", "predict", "train_step", "save_checkpoint",
                                            "load_checkpoint", "export_graph", "state_dict", "load_state_dict")]
    + ["graphforge.cli.main"]
)


def public_names() -> list[tuple[str, str, object]]:
    """``(namespace, name, object)`` for every public name of :data:`NAMESPACES`."""
    out = []
    for ns in NAMESPACES:
        mod = importlib.import_module(ns)
        for name in mod.__all__:
            out.append((ns, name, getattr(mod, name)))
    return out


def resolve(dotted: str):
    """The object a dotted public path names (``graphforge.Trainer.fit``)."""
    # attribute first: gf.trace is the function that shadows the submodule graphforge.trace
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, attr in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            obj = importlib.import_module(".".join(parts[:i + 1]))
    return obj


def _own_doc(obj) -> str:
    doc = obj.__doc__ if isinstance(obj, (type,)) or callable(obj) or inspect.ismodule(obj) else None
    if doc is None or (not inspect.isclass(obj) and not inspect.isroutine(obj) and not inspect.ismodule(obj)
                       and doc == type(obj).__doc__):
        return ""
    return inspect.cleandoc(doc)


def attribute_docstring(module_name: str, name: str) -> str:
    """The string literal right after ``name = ...`` at the top level of ``module_name`` ("" if none)."""
    mod = sys.modules[module_name]
    tree = ast.parse(inspect.getsource(mod))
    body = tree.body
    for i, stmt in enumerate(body):
        targets = (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign)
                   else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and i + 1 < len(body):
            nxt = body[i + 1]
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                return inspect.cleandoc(nxt.value.value)
    return ""


def _defining_module(ns: str, name: str, obj) -> str:
    """The module whose source assigns a data constant ``name`` (followed through re-exports)."""
    mod = importlib.import_module(ns)
    for candidate in [ns] + sorted(m for m in sys.modules if m.startswith(ns.split(".")[0] + ".")):
        m = sys.modules.get(candidate)
        if m is not None and m.__dict__.get(name) is obj and getattr(m, "__file__", None):
            try:
                if attribute_docstring(candidate, name) or re.search(rf"^{name}\s*[:=]", inspect.getsource(m), re.M):
                    return candidate
            except (OSError, TypeError):
                continue
    return mod.__name__


def _params(obj) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.name not in ("self", "cls") and not p.name.startswith("_")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _doc_of(obj) -> str:
    """A class's docstring together with its ``__init__``'s (where arguments are often described)."""
    doc = _own_doc(obj)
    if inspect.isclass(obj):
        # arguments are described where the constructor is: the class (or base) defining __init__
        for klass in obj.__mro__:
            if "__init__" in vars(klass):
                if klass is not obj:
                    doc += "\n" + _own_doc(klass)
                if vars(klass)["__init__"].__doc__:
                    doc += "\n" + inspect.cleandoc(vars(klass)["__init__"].__doc__)
                break
    return doc


def problems(ns: str, name: str, obj, ignore_args: frozenset = frozenset()) -> list[str]:
    """What the first tier finds missing for one public name (empty: fine); arguments named in
    ``ignore_args`` are not required to be mentioned."""
    where = f"{ns}.{name}"
    if name == "__version__":
        return []
    if inspect.ismodule(obj):
        return [] if _own_doc(obj) else [f"{where}: module without a docstring"]
    if not callable(obj):
        module = _defining_module(ns, name, obj)
        return [] if attribute_docstring(module, name) else [
            f"{where}: data constant without an attribute docstring (a string literal after `{name} = ...` in {module})"]
    doc = _doc_of(obj)
    if not doc.strip():
        return [f"{where}: no docstring"]
    missing = [p for p in _params(obj) if p not in ignore_args and not re.search(rf"\b{re.escape(p)}\b", doc)]
    return [f"{where}: the docstring does not mention the argument(s) {', '.join(missing)}"] if missing else []


def _returns_nothing(obj) -> bool:
    if inspect.isclass(obj):
        return True
    try:
        ann = inspect.signature(obj).return_annotation
    except (TypeError, ValueError):
        return False
    return ann in (None, "None")


def full_doc_problems(dotted: str) -> list[str]:
    """What the second tier finds missing for one entry point (empty: fine)."""
    obj = resolve(dotted)
    doc = _doc_of(obj)
    out = []
    if not doc.strip():
        return [f"{dotted}: no docstring"]
    missing = [p for p in _params(obj) if not re.search(rf"\b{re.escape(p)}\b", doc)]
    if missing:
        out.append(f"{dotted}: does not mention the argument(s) {', '.join(missing)}")
    if _params(obj) and not re.search(r"^(Args|Arguments|Parameters):", doc, re.M):
        out.append(f"{dotted}: no Args: section")
    if not _returns_nothing(obj) and not re.search(r"^(Returns|Yields):", doc, re.M):
        out.append(f"{dotted}: no Returns: section")
    if not re.search(r"^Raises:", doc, re.M):
        out.append(f"{dotted}: no Raises: section")
    if not re.search(r"^Examples?:", doc, re.M):
        out.append(f"{dotted}: no Example: section")
    return out
