"""Which project files a module runs: the closure of its imports, read from the source.

DVC reruns a stage when one of its dependencies changes, so a stage must list every project file
its asset executes. Hand-kept lists drift (the ``generator`` stage once omitted five modules it
imports); this walks the import statements instead (module level and inside functions), adds the
``__init__.py`` of every package on the way (Python runs them on import), and counts a string
literal that names a project module as a dependency too: that is how training entry points are
launched (``python -m orchestration.train_hmr`` through Dagster Pipes or torchrun).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

PROJECT_PACKAGES = ("dreamer_core", "avatar_core", "orchestration")


def module_file(root: Path, module: str) -> Path | None:
    """The file of a project module (``a/b.py`` or ``a/b/__init__.py``), or None."""
    if module.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_inits(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


def _direct_imports(path: Path, module: str) -> tuple[str, ...]:
    """Project modules one file names: imports (``from a import b`` also tries ``a.b``) and
    string literals equal to a module name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text.split(".")[0] in PROJECT_PACKAGES and text.replace(".", "").replace("_", "").isalnum():
                found.add(text)
    return tuple(sorted(m for m in found if m.split(".")[0] in PROJECT_PACKAGES))


def import_closure(root: Path, modules: Iterable[str]) -> list[str]:
    """Repo-relative paths of every project file that importing (or launching) ``modules`` runs."""
    root = root.resolve()
    todo = list(modules)
    seen: set[str] = set()
    files: set[Path] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(root, module)
        if path is None:
            continue  # a name inside a module (``from a.b import function``), not a module
        files.add(path)
        todo.extend(_package_inits(module))
        todo.extend(_direct_imports(path, module))
    return sorted(p.relative_to(root).as_posix() for p in files)
