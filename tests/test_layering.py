"""The layers of the house, checked on the source: core < passes < runtimes < apps, and the facade on top.

Every import statement counts — at module level or inside a function, absolute or relative — because a
function-level import is still a dependency (it only hides it from import-time checks). Module names
come from pyproject's package-dir mapping (``graphforge.passes`` ← passes/, ``graphforge.train`` ←
apps/train, …), which is why a static import viewer that walks directories gets this wrong.
"""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Layer of each top-level package (or module) under ``graphforge``; a longer prefix wins.
CORE, PASSES, RUNTIMES, APPS, FACADE = range(5)
LAYER_NAMES = {CORE: "core", PASSES: "passes", RUNTIMES: "runtimes", APPS: "apps", FACADE: "facade"}
# The facade and the apps sit side by side at the top: apps use the public names (``import graphforge
# as gf``) and the facade loads apps on demand (``gf.Trainer``); nothing below may reach either.
RANK = {CORE: 0, PASSES: 1, RUNTIMES: 2, APPS: 3, FACADE: 3}
LAYERS = {
    "graphforge": CORE,              # ir, ops, trace, nn, errors, dtypes, runtime (binding), summary, params_io
    "graphforge.passes": PASSES,
    "graphforge.runtimes": RUNTIMES,
    "graphforge.train": APPS,
    "graphforge.serve": APPS,
    "graphforge.cli": APPS,
    # The public entry points: ``import graphforge`` and ``graphforge.api`` reach every layer, lazily.
    "graphforge.__init__": FACADE,
    "graphforge.api": FACADE,
}
BACKENDS = ("jax", "jaxlib", "onnx", "onnxruntime", "optax")


def package_dirs() -> dict[str, Path]:
    return {pkg: ROOT / d for pkg, d in
            tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].items()}


def source_modules() -> dict[str, Path]:
    """Every graphforge module by dotted name, found through the package-dir mapping."""
    modules: dict[str, Path] = {}
    for pkg, directory in package_dirs().items():  # (no mapped directory lies inside another)
        for path in directory.rglob("*.py"):
            rel = path.relative_to(directory)
            if "__pycache__" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                name = ".".join([pkg, *parts[:-1]]) if len(parts) > 1 else pkg
                if name == "graphforge":
                    name = "graphforge.__init__"
            else:
                name = ".".join([pkg, *parts])
            modules[name] = path
    return modules


def layer_of(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def imports_of(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file; relative imports resolved."""
    package = name[: -len(".__init__")] if name.endswith(".__init__") else (
        name if path.name == "__init__.py" else name.rsplit(".", 1)[0])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            # importlib.import_module("graphforge.runtimes." + name) and f-strings: the literal prefix counts
            arg = node.args[0]
            head = arg.value if isinstance(arg, ast.Constant) else (
                arg.values[0].value if isinstance(arg, ast.JoinedStr) and arg.values
                and isinstance(arg.values[0], ast.Constant) else
                arg.left.value if isinstance(arg, ast.BinOp) and isinstance(arg.left, ast.Constant) else None)
            if isinstance(head, str) and head.startswith("graphforge"):
                found.append((head.rstrip("."), node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_PATH.fullmatch(node.value):
            # a module path kept as data (a table of back ends handed to importlib later) is a dependency too
            found.append((node.value, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from .. import dtypes`` imports the submodule graphforge.dtypes, not the package's facade
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                is_module = sub in MODULES or f"{sub}.__init__" in MODULES or any(m.startswith(sub + ".") for m in MODULES)
                found.append((sub if is_module else target, node.lineno))
    return found


_MODULE_PATH = re.compile(r"graphforge\.(passes|runtimes|train|serve|cli)(\.\w+)*")


def _is_dynamic_import(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id in ("import_module", "__import__"))


MODULES = source_modules()


def test_the_mapping_finds_every_layer():
    seen = {layer_of(m) for m in MODULES}
    assert seen == set(LAYER_NAMES), f"layers found: {sorted(LAYER_NAMES[s] for s in seen)}"
    assert "graphforge.train.trainer" in MODULES and "graphforge.passes.manager" in MODULES


def test_no_module_imports_a_higher_layer():
    violations = []
    for name, path in sorted(MODULES.items()):
        own = layer_of(name)
        for target, line in imports_of(name, path):
            if not target.startswith("graphforge"):
                continue
            theirs = FACADE if target == "graphforge" else layer_of(target)
            if RANK[theirs] > RANK[own]:
                violations.append(f"{path.relative_to(ROOT)}:{line}: {LAYER_NAMES[own]} module {name} imports "
                                  f"{LAYER_NAMES[theirs]} module {target}")
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("layer", [CORE, PASSES])
def test_core_and_passes_import_no_backend(layer):
    offenders = [f"{path.relative_to(ROOT)}:{line}: {target}"
                 for name, path in sorted(MODULES.items()) if layer_of(name) == layer
                 for target, line in imports_of(name, path) if target.split(".")[0] in BACKENDS]
    assert not offenders, "\n".join(offenders)


def test_the_check_would_see_a_violation(tmp_path):
    """The checker can fail: a core file importing a pass, inside a function, is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(name):\n    from ..passes import manager\n    import graphforge.runtimes.jax\n"
                   "    importlib.import_module(f'graphforge.runtimes.{name}')\n"
                   "TABLE = {'jax': 'graphforge.runtimes.jax'}\n")
    found = imports_of("graphforge.ir.bad", bad)
    assert ("graphforge.passes.manager", 2) in found and ("graphforge.runtimes.jax", 3) in found
    assert ("graphforge.runtimes", 4) in found and ("graphforge.runtimes.jax", 5) in found
    assert RANK[layer_of("graphforge.passes.manager")] > RANK[layer_of("graphforge.ir.bad")]
