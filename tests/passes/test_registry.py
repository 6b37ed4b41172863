"""Pass registration and contracts: in place or not, required/provided/preserved properties,
per-run statistics, and how the PassManager honours them."""
import pytest

import graphforge as gf
from graphforge.errors import PassError
from graphforge.passes import PassManager, optimize, pass_info, registry
from graphforge.passes import manager as manager_mod

IR = """
graph g(%x: f32[batch,4]) {
  %one: f32[] = constant() {value=tensor<f32[]>[1.0]}
  %zero: f32[] = constant() {value=tensor<f32[]>[0.0]}
  %a: f32[batch,4] = mul(%x, %one)
  %b: f32[batch,4] = maximum(%a, %zero)
  return %b as out
}"""


@pytest.fixture
def temp_pass():
    added = []

    def add(name, fn, **contract):
        registry.register_pass(name, **contract)(fn)
        added.append(name)
        return fn
    yield add
    for name in added:
        registry._unregister(name)


def test_register_pass_is_one_function_in_both_modules():
    assert manager_mod.register_pass is registry.register_pass
    assert manager_mod.get_pass("cse") is registry.get_pass("cse")


def test_builtin_contracts():
    assert pass_info("infer").provides == ("typed",)
    assert pass_info("fuse").requires == ("typed",) and pass_info("fuse").stats
    for name in ("fold", "simplify", "cse", "dce", "fuse"):
        assert pass_info(name).in_place and "typed" in pass_info(name).preserves, name


def test_unknown_property_is_refused():
    with pytest.raises(PassError, match="unknown required property 'sorted'"):
        registry.register_pass("test_bad_contract", requires=("sorted",))


def test_a_requirement_runs_its_provider_first_once():
    manager = PassManager("fuse,cse,fuse")
    manager.run(gf.parse(IR))
    assert [(r.name, r.required_by) for r in manager.report.records] == [
        ("infer", "fuse"), ("fuse", ""), ("cse", ""), ("fuse", "")]  # cse preserves "typed"
    manager = PassManager("infer,fuse")
    manager.run(gf.parse(IR))
    assert [r.name for r in manager.report.records] == ["infer", "fuse"]


def test_a_pass_that_declares_nothing_loses_the_property(temp_pass):
    temp_pass("test_opaque", lambda g: (g, False))
    manager = PassManager("infer,test_opaque,fuse")
    manager.run(gf.parse(IR))
    assert [r.name for r in manager.report.records] == ["infer", "test_opaque", "infer", "fuse"]


def test_in_place_passes_get_a_copy_and_others_the_graph_itself(temp_pass):
    seen = []

    def reader(graph):
        seen.append(graph)
        return graph, False

    def editor(graph):
        seen.append(graph)
        graph.name = "edited"
        return graph, True

    temp_pass("test_reader", reader, in_place=False)
    temp_pass("test_editor", editor)
    g = gf.parse(IR)
    out = optimize(g, "test_reader,test_editor,test_reader")
    assert seen[0] is g  # a pass that is not in place reads the caller's graph: no copy for it
    assert seen[1] is not g and seen[2] is seen[1] and out is seen[1]
    assert out.name == "edited" and g.name == "g"
    seen.clear()
    out = optimize(g, "test_reader")
    assert seen == [g] and out is not g and str(out) == str(g)  # the result is always a new graph


def test_fuse_and_simplify_report_matches_per_run():
    reports = []
    optimize(gf.parse(IR), "simplify,fuse", report=reports.append)
    optimize(gf.parse(IR), "simplify,fuse", report=reports.append)
    for report in reports:  # the same counts each run: nothing accumulates between runs
        assert report.stats("simplify") == {"mul_one": 1}
        assert report.stats("fuse") == {"relu": 1}
        assert report.stats() == {"mul_one": 1, "relu": 1}


def test_passes_and_the_manager_do_not_import_each_other():
    """Registration lives in passes/registry.py: a pass module imports it, never the manager, and the
    manager imports no pass (only ``passes/__init__.py`` wires the two together)."""
    import ast
    import pathlib

    root = pathlib.Path(registry.__file__).parent
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            # the passes-package module this import names (relative, or absolute graphforge.passes.x)
            if node.level:
                target = (node.module or "").split(".")[0] if node.level == 1 else ""
                names = [target] if target else [a.name for a in node.names]
            elif (node.module or "").startswith("graphforge.passes"):
                rest = node.module[len("graphforge.passes"):].lstrip(".")
                names = [rest.split(".")[0]] if rest else [a.name for a in node.names]
            else:
                continue
            if rel != "manager.py" and "manager" in names:
                bad.append(f"{rel}:{node.lineno} imports the manager")
            if rel == "manager.py" and set(names) - {"registry"}:
                bad.append(f"manager.py:{node.lineno} imports {names}")
    assert not bad, bad
