"""Issue #13: op families use each other through module references (``from . import creation as
_creation``, looked up at call time), not through imports inside functions. The one exception is
``common.unbroadcast``: every family imports ``common`` before any family exists."""
from __future__ import annotations

import ast
import pathlib

OPS = pathlib.Path(__file__).resolve().parents[2] / "graphforge" / "ops"
ALLOWED = {("common.py", "unbroadcast")}


def test_no_function_level_imports_in_ops():
    found = []
    for path in sorted(OPS.glob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for stmt in fn.body:  # direct statements; nested functions are visited on their own
                for node in ast.walk(stmt):
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and (path.name, fn.name) not in ALLOWED:
                        found.append(f"ops/{path.name}:{node.lineno} in {fn.name}(): {ast.unparse(node)}")
    assert not found, "use a module reference at the top of the module instead:\n" + "\n".join(sorted(set(found)))
