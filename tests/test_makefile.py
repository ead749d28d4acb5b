"""``make clean`` removes every asset's output folder (and the stores), run in a scratch copy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_make_clean_removes_every_asset_output(tmp_path):
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    outputs = [next(iter(out)) if isinstance(out, dict) else out for stage in stages.values() for out in stage["outs"]]
    assert len(outputs) == len(stages) >= 14
    for out in [*outputs, "dagster_home", "mlflow", "dvc-remote"]:
        (tmp_path / out).mkdir(parents=True)
        (tmp_path / out / "file").write_text("x")
    (tmp_path / ".dvc" / "cache").mkdir(parents=True)
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True, capture_output=True)
    left = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "data").iterdir())
    assert left == [] and not (tmp_path / "mlflow").exists() and (tmp_path / ".dvc" / "cache").is_dir(), left
