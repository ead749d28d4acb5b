"""The layering rule (libraries never import Dagster, MLflow, DVC or orchestration), checked on every
import statement."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLS = {"dagster", "dagster_pipes", "dagster_webserver", "mlflow", "dvc"}
FORBIDDEN = {
    "dreamer_core": TOOLS | {"avatar_core", "orchestration"},
    "avatar_core": TOOLS | {"orchestration"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_libraries_do_not_import_orchestration_tools(package):
    files = sorted((REPO / package).rglob("*.py"))
    assert files
    bad = {str(f.relative_to(REPO)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"layering violated: {bad}"


def test_the_check_sees_violations(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import mlflow.tracking\nfrom dagster import asset\nfrom . import local\n")
    assert imported_roots(f) == {"mlflow", "dagster"}
