"""SIGKILL at seeded points of the write paths of ``pose_bank``, ``reference_renders`` (one
partition), a round shard and ``filtered_dataset`` (a training checkpoint save has its own 20
kills: tests/dreamer_core/test_resume.py).

Each asset starts from a complete version A; a real materialization that would write version B
(other settings) is killed at a seeded write (``tests.helpers.killpoint``: kill points are counted
in file-system writes under the asset's folders, one drawn in each of ``PD_FAULT_KILLS`` equal
stretches from the first write to the last, the first kill at the first write and the last at the
final one). Then:

- what a reader goes by is A complete, B complete (killed after the commit point) or, for a
  partition, nothing (its commit mark is gone, so no reader counts it): never a mix of the two,
  never a file cut short;
- a rerun with B's settings completes with its checks passing, gives the bytes of an undisturbed
  B run, and has every key exactly once.

The next kill goes back from B to A. ``make faults`` runs 25 kills an asset; ``make test`` 5.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dreamer_core.datasets.reference_plan import planned_keys, read_plan_file, record_file
from dreamer_core.datasets.shards import index_file, index_keys, read_index
from dreamer_core.io import _exchange
from dreamer_core.poses.bank import read_pose_bank
from orchestration.assets.mining import committed_shards, round_manifest
from orchestration.assets.renders import _commit_state
from orchestration.resources import StorageResource
from tests.hardening.conftest import FAULTS
from tests.helpers.killpoint import Zygote
from tests.helpers.pipeline import DOWNSTREAM, UPSTREAM, cli, pipeline_env, write_small_params
from tests.helpers.repo import REPO

KILLS = int(os.environ.get("PD_FAULT_KILLS", "5"))
Files = dict[str, str]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> Files:
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass(frozen=True)
class Target:
    """One asset (or partition) under test: version B's settings, the folders its writes go to,
    the files a reader goes by ({} when it finds nothing committed), and what a complete
    version must hold (every key once)."""

    key: str
    partition: str | None
    change: dict
    folders: Callable[[Path], list[Path]]
    files: Callable[[Path], Files]
    complete: Callable[[Path], None]


def _beside(name: str) -> Callable[[Path], list[Path]]:
    return lambda d: [d / name, d / f".{name}.staging", d / f".{name}.old"]


def _pose_bank_complete(d: Path) -> None:
    bank = read_pose_bank(d / "pose_bank")
    ids = bank.table.pose_id
    assert ids.is_unique and len(ids) == json.loads((d / "pose_bank" / "summary.json").read_text())["num_poses"]


def _filtered_complete(d: Path) -> None:
    folder = d / "filtered_dataset"
    manifest = pd.read_parquet(folder / "manifest.parquet")
    shard_keys = [k for keys in index_keys(folder, read_index(folder)).values() for k in keys]
    kept = manifest.key[manifest.decision == "kept"]
    assert manifest.key.is_unique and len(shard_keys) == len(set(shard_keys)) and set(shard_keys) == set(kept)


def _round_files(d: Path) -> Files:
    folder, shard = d / "round1_generations", "shard-000000"
    committed = committed_shards(StorageResource(root=str(d)), "round1_generations", [shard])  # the readers' view
    assert bool(committed) == (folder / index_file(f"{shard}.tar")).exists()
    if not committed:
        return {}  # the index is the commit mark: a reader takes nothing of this shard
    names = [f"{shard}.tar", index_file(f"{shard}.tar"), f"manifest-{shard}.parquet", f"preview-{shard}.png"]
    return {n: _sha(folder / n) for n in names}


def _round_complete(d: Path) -> None:
    folder, shard = d / "round1_generations", "shard-000000"
    keys = index_keys(folder, read_index(folder))[f"{shard}.tar"]
    rows = round_manifest(StorageResource(root=str(d)), "round1_generations", [shard])  # checks the manifest's hash
    assert len(keys) == len(set(keys)) == 32 and rows.key.tolist() == keys


def _reference_files(d: Path) -> Files:
    folder, key = d / "reference_renders", "train-000000"
    if not (folder / record_file(key)).exists():
        return {}  # the commit record is the commit mark: readers wait for this partition
    assert _commit_state(folder, key)["committed"], "a commit record that does not match its shard"
    names = ["train/shard-000000.tar", "train/" + index_file("shard-000000.tar"), f"manifest-{key}.parquet",
             f"preview-{key}.png", record_file(key)]  # fmt: skip
    return {n: _sha(folder / n) for n in names}


def _reference_complete(d: Path) -> None:
    folder = d / "reference_renders"
    head = read_plan_file(folder)
    part = next(p for p in head["partitions"] if p.key == "train-000000")
    keys = index_keys(folder / "train", read_index(folder / "train"))["shard-000000.tar"]
    record = json.loads((folder / record_file(part.key)).read_text())
    assert len(keys) == len(set(keys)) and set(keys) <= set(planned_keys(part, 0))
    assert record["num_samples"] == len(keys)
    assert record["sha256"] == _sha(folder / "train" / "shard-000000.tar")


TARGETS = [
    Target("pose_bank", None, {"seed": 4321}, _beside("pose_bank"), lambda d: _tree(d / "pose_bank"),
           _pose_bank_complete),
    Target("reference_renders", "train-000000", {"seed": 4321}, lambda d: [d / "reference_renders"],
           _reference_files, _reference_complete),
    Target("round1_generations", "shard-000000", {"seed": 4321}, lambda d: [d / "round1_generations"], _round_files,
           _round_complete),
    Target("filtered_dataset", None, {"filtered_dataset": {"samples_per_shard": 7}}, _beside("filtered_dataset"),
           lambda d: _tree(d / "filtered_dataset"), _filtered_complete),
]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The small pipeline built once: version A of every asset."""
    root = tmp_path_factory.mktemp("faults")
    write_small_params(root)
    env = pipeline_env(root, "data", "home")
    cli(env, "materialize", *UPSTREAM, checks=False)
    cli(env, "materialize", *DOWNSTREAM)
    return root


def _differs(seen: Files, versions: dict[str, Files]) -> str:
    return "; ".join(f"vs {v}: " + ", ".join(sorted(n for n in set(seen) | set(f) if seen.get(n) != f.get(n)))
                     for v, f in versions.items())  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.key)
def test_a_run_killed_at_any_write_leaves_the_old_version_or_the_new_one(world, tmp_path, target):
    data = tmp_path / "data"
    shutil.copytree(world / "data", data)
    shutil.copy(world / "params.yaml", tmp_path / "params.yaml")
    params = {"A": tmp_path / "params.yaml", "B": write_small_params(tmp_path, target.change, "params-b.yaml")}
    zygotes = {v: Zygote({**pipeline_env(tmp_path, "data", "home"), "PD_PARAMS": str(p), "PYTHONPATH": str(REPO)},
                         REPO, tmp_path) for v, p in params.items()}  # fmt: skip
    try:
        survived = _kill_and_rerun(target, data, zygotes, tmp_path)
    finally:
        for z in zygotes.values():
            z.close()
    assert survived == KILLS


def _kill_and_rerun(target: Target, data: Path, zygotes: dict[str, Zygote], tmp_path: Path) -> int:
    watch = target.folders(data)
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    one_step = _exchange(tmp_path / "x", tmp_path / "y")  # else a folder swap has a moment with no folder

    def run(version: str, kill_at: int = 0) -> dict:
        answer = zygotes[version].run(target.key, watch, kill_at, target.partition)
        if not kill_at:
            assert answer.get("code") == 0, f"{target.key} ({version}) failed:\n{zygotes[version].log_tail()}"
        return answer

    versions, writes = {"A": target.files(data)}, {}
    for v in ("B", "A"):  # undisturbed runs: each version's bytes and how many writes make it
        writes[v] = run(v)["writes"]
        if v == "A":
            assert target.files(data) == versions["A"], "an undisturbed rerun of A changed its bytes"
        versions[v] = target.files(data)
        target.complete(data)
    assert versions["A"] and versions["B"] and versions["A"] != versions["B"]

    rng, now, survived, seen_as = np.random.default_rng(zlib.crc32(target.key.encode())), "A", 0, []
    for i in range(KILLS):
        new = "B" if now == "A" else "A"
        at = 1 + int((i + rng.random()) * writes[new] / KILLS)  # one in each stretch of the write path,
        at = {0: 1, KILLS - 1: writes[new]}.get(i, at)  # the first before any write, the last before the final one
        assert run(new, at).get("signal") == signal.SIGKILL, f"kill at write {at} of {writes[new]}: it finished"
        seen = target.files(data)
        allowed = {"old": versions[now], "new": versions[new]}
        assert seen in allowed.values() or (not seen and (target.partition or not one_step)), (
            f"killed at write {at}/{writes[new]} ({now} -> {new}), a reader sees a mix: {_differs(seen, allowed)}"
        )
        seen_as.append(next((k for k, v in allowed.items() if v == seen), "nothing"))
        if seen:
            target.complete(data)
        run(new)
        assert target.files(data) == versions[new], f"the rerun after a kill at write {at} gave other bytes"
        target.complete(data)
        survived, now = survived + 1, new
    outcomes = {k: seen_as.count(k) for k in ("old", "new", "nothing")}
    assert outcomes["old"] and outcomes["new"], f"the kills never left one of the versions: {outcomes}"
    FAULTS.append((target.key, survived, sorted(writes.values()), outcomes))
    return survived
