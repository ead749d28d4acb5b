"""Shared fixtures. Environment defaults (caches inside the repo, offline) are set before any
heavy import so tests behave like `make` targets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("ANNY_CACHE_DIR", str(REPO / ".cache" / "anny"))
os.environ.setdefault("WARP_CACHE_PATH", str(REPO / ".cache" / "warp"))
os.environ.setdefault("MPLCONFIGDIR", str(REPO / ".cache" / "matplotlib"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def anny_body():
    from dreamer_core.bodies import load_body_model
    from dreamer_core.config import BodyModelSettings

    return load_body_model(BodyModelSettings(name="anny"))


@pytest.fixture(scope="session")
def smpl_dir(tmp_path_factory, anny_body) -> Path:
    """A synthetic SMPL model in smplx's own format, its skeleton copied from anny's T-pose."""
    from tests.helpers.synthetic_smpl import write_synthetic_smpl

    folder = tmp_path_factory.mktemp("smpl_models")
    write_synthetic_smpl(folder, anny_body)
    return folder
