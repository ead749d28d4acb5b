"""DVC and Dagster side by side: generated dvc.yaml, both CLIs, repro and experiments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestration.definitions import defs
from orchestration.dvc_yaml import render
from tests.orchestration.conftest import DVC, REPO, sh

VENV_BIN = Path(sys.executable).parent


def test_dvc_yaml_matches_asset_graph():
    assert (REPO / "dvc.yaml").read_text() == render(defs), (
        "dvc.yaml drifted from the asset graph: run `make dvc-yaml` and commit it"
    )
    stage = yaml.safe_load(render(defs))["stages"]["pose_bank"]
    assert stage["outs"] == [{"data/pose_bank": {"persist": True}}] and "tiny.pose_bank" in stage["params"]
    assert all((REPO / d).exists() for d in stage["deps"])


def test_each_tool_has_its_antlr():
    """Dagster's selection parser needs antlr4 4.13; DVC's hydra/omegaconf pin 4.9."""
    from importlib.metadata import version

    assert version("antlr4-python3-runtime").startswith("4.13")
    out = subprocess.run([str(REPO / ".venv-dvc" / "bin" / "python"), "-c",
                          "from importlib.metadata import version; print(version('antlr4-python3-runtime'))"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.startswith("4.9")


@pytest.mark.slow
def test_dagster_cli_validate_and_string_selection(repo_copy):
    root, env = repo_copy
    sh([str(VENV_BIN / "dagster"), "definitions", "validate", "-m", "orchestration.definitions"], root, env)
    sh([str(VENV_BIN / "dagster"), "asset", "materialize", "-m", "orchestration.definitions",
        "--select", "pose_bank", "--config-json",
        json.dumps({"ops": {"pose_bank": {"config": {"num_poses": 16}}}})], root, env)  # fmt: skip
    assert len(pd.read_parquet(root / "data" / "pose_bank" / "poses.parquet")) == 16
    # Materialized outside `dvc repro`, the asset committed its output to DVC itself.
    assert "up to date" in sh([str(DVC), "status", "pose_bank"], root, env).stdout


@pytest.mark.slow
def test_dvc_repro_and_experiment(repo_copy):
    root, env = repo_copy
    sh([str(DVC), "repro", "pose_bank"], root, env, timeout=600)
    assert (root / "data" / "pose_bank" / "poses.parquet").is_file()
    assert "up to date" in sh([str(DVC), "status", "pose_bank"], root, env).stdout
    sh(["git", "add", "dvc.lock"], root, env)
    sh(["git", "commit", "-q", "-m", "pose bank v1"], root, env)
    sh(
        [str(DVC), "exp", "run", "-S", "tiny.pose_bank.num_poses=12", "-n", "small-bank", "pose_bank"],
        root,
        env,
        timeout=600,
    )
    assert len(pd.read_parquet(root / "data" / "pose_bank" / "poses.parquet")) == 12
    shown = sh([str(DVC), "exp", "show", "--json"], root, env).stdout
    assert "small-bank" in shown

    # A dataset version back (README: "Get a dataset version back"): the committed dvc.lock + checkout.
    sh(["git", "checkout", "HEAD", "--", "dvc.lock", "params.yaml"], root, env)
    sh([str(DVC), "checkout", "pose_bank"], root, env)
    v1 = pd.read_parquet(root / "data" / "pose_bank" / "poses.parquet")
    assert len(v1) == yaml.safe_load((root / "params.yaml").read_text())["tiny"]["pose_bank"]["num_poses"]
    # ... and on another machine: a clone of the git repository pulls that version from the shared remote.
    sh([str(DVC), "push", "pose_bank"], root, env)
    other = root.parent / "other-clone"
    sh(["git", "clone", "-q", str(root), str(other)], root.parent, env)
    sh([str(DVC), "pull", "pose_bank"], other, env)
    assert pd.read_parquet(other / "data" / "pose_bank" / "poses.parquet").equals(v1)
