"""Fixtures for the orchestration tests: a throw-away copy of the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.repo import DVC, REPO, make_repo_copy, sh

__all__ = ["DVC", "REPO", "sh"]


@pytest.fixture()
def repo_copy(tmp_path) -> tuple[Path, dict[str, str]]:
    return make_repo_copy(tmp_path)
