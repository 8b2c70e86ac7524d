"""Tests share code only through `tests/support` and conftest fixtures: no test module imports
another test module (that would run its tests twice and tie two domains together)."""
import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_modules_import_no_test_module():
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "tests" and (parts[-1].startswith("test_") or parts[-1] == "conftest"):
                found.append(f"{path.relative_to(TESTS)} imports {module}")
    assert found == []


def test_the_check_sees_an_import_of_a_test_module(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from tests.backup.test_pitr_sealed import write_ltx\nimport tests.conftest\n")
    assert list(imported_modules(sample)) == ["tests.backup.test_pitr_sealed", "tests.conftest"]
