"""A throw-away copy of the repository (git + DVC initialised) for tests that run the real
Dagster, DVC and MLflow commands without touching the developer's own instance or data."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DVC = REPO / "scripts" / "dvc"
COPY = ["dreamer_core", "avatar_core", "orchestration", "params.yaml", "dvc.yaml", "pyproject.toml",
        ".dvcignore", ".gitignore", "scripts"]  # fmt: skip


def git_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MLFLOW_", "PD_"))}
    env.update(
        GIT_AUTHOR_NAME="ci", GIT_AUTHOR_EMAIL="ci@example.invalid",
        GIT_COMMITTER_NAME="ci", GIT_COMMITTER_EMAIL="ci@example.invalid",
        DAGSTER_HOME=str(home / "dagster_home"),
        PD_DVC_BIN=str(REPO / ".venv-dvc" / "bin" / "dvc"),
    )  # fmt: skip
    return env


def sh(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def make_repo_copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """``tmp_path/repo``: the code, params and dvc.yaml under git, DVC initialised with the
    remote ``tmp_path/remote``; and an environment whose Dagster instance lives inside it."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, root / name)
    env = git_env(root)
    (root / "dagster_home").mkdir()
    (root / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    sh(["git", "init", "-q", "-b", "main"], root, env)
    sh([str(DVC), "init", "-q"], root, env)
    sh([str(DVC), "config", "core.analytics", "false"], root, env)
    sh([str(DVC), "remote", "add", "-d", "local", str(tmp_path / "remote")], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-q", "-m", "init"], root, env)
    return root, env
