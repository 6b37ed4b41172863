"""Every registered pass, fusion rule and simplification rule family has its own test file beside
it (DESIGN rule 6)."""
import os

from graphforge.passes import fusion, list_passes, simplify_rules

HERE = os.path.dirname(__file__)


def test_each_pass_and_rule_has_a_test_file():
    files = set(os.listdir(HERE))
    for name in list_passes():
        if name.startswith("test_"):
            continue
        if name == "fuse":
            continue  # the fuse pass is tested through its rules and test_pattern.py
        assert f"test_{name}.py" in files, f"pass {name!r} has no tests/passes/test_{name}.py"
    for module in fusion.RULE_MODULES:
        assert f"test_fusion_{module}.py" in files, f"fusion rule {module!r} has no test file"
    assert [r.name for r in fusion.RULES] == fusion.RULE_MODULES
    for module in simplify_rules.RULE_MODULES:
        assert f"test_simplify_{module}.py" in files, f"simplify rule family {module!r} has no test file"
