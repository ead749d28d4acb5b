"""The committed ``dvc.lock`` is what the code would write: no stage's code or params have moved
on since the lock was recorded, and no stage misses a project file its asset imports.

A commit that changes a stage's code without refreshing the lock leaves ``dvc status`` claiming
every stage changed on a fresh clone; these tests fail on that commit instead. Refresh the lock
with ``make demo`` (each asset commits its stage) and commit ``dvc.lock`` (README: DVC).
"""

from __future__ import annotations

import hashlib

import yaml

from orchestration.code_deps import import_closure
from orchestration.definitions import defs
from orchestration.dvc_yaml import COMMON_MODULES, asset_module
from tests.orchestration.conftest import REPO


def _lock() -> dict:
    return yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]


def _normalise(value):
    """DVC writes YAML 1.2 (``1e-05`` is a float there), PyYAML reads YAML 1.1 (a string): compare
    numbers as numbers."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def test_every_stage_of_dvc_yaml_is_locked():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    lock = _lock()
    assert set(lock) == set(stages), "dvc.lock lacks stages of dvc.yaml: run `make demo` and commit dvc.lock"
    for name, stage in stages.items():
        locked = [d["path"] for d in lock[name]["deps"]]
        assert sorted(locked) == sorted(stage["deps"]), f"{name}: dvc.lock records other deps than dvc.yaml"


def test_locked_code_hashes_match_the_files():
    stale = []
    for name, stage in _lock().items():
        for dep in stage["deps"]:
            if dep["path"].startswith("data/"):
                continue  # upstream outputs: checked by `dvc status` where the data exist
            path = REPO / dep["path"]
            if not path.is_file() or hashlib.md5(path.read_bytes()).hexdigest() != dep["md5"]:
                stale.append(f"{name}: {dep['path']}")
    assert not stale, "code changed since dvc.lock was written (run `make demo`, commit dvc.lock):\n" + "\n".join(stale)


def test_locked_params_match_params_yaml():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stale = []
    for name, stage in _lock().items():
        for key, value in stage.get("params", {}).get("params.yaml", {}).items():
            current = params
            for part in key.split("."):
                current = current[part]
            if _normalise(current) != _normalise(value):
                stale.append(f"{name}: {key}")
    assert not stale, "params.yaml changed since dvc.lock was written:\n" + "\n".join(stale)


def test_stage_deps_are_the_import_closure_of_the_asset_module():
    """Every project module an asset's module imports (directly, in a function, or launches with
    ``python -m``) is a dependency of its stage, and nothing else is."""
    graph = defs.resolve_asset_graph()
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        code = {d for d in stages[key.to_user_string()]["deps"] if not d.startswith("data/")}
        assert code == set(import_closure(REPO, [asset_module(node), *COMMON_MODULES])), key
    # What an earlier hand-kept list missed: the generator stage runs DPO, pose and tracking code.
    generator = set(stages["generator"]["deps"])
    assert {"orchestration/assets/common.py", "dreamer_core/viz.py", "dreamer_core/resume.py"} <= generator
    hmr = set(stages["hmr_checkpoints"]["deps"])
    assert "orchestration/train_hmr.py" in hmr  # launched with `python -m`, never imported
