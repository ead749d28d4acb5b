"""The per-partition contract of a sharded asset, checked in the run that materialized the partition.

A check of one partition reads that partition's files only (its shard, its index entry, its manifest
part), so a backfill of 500 shards costs 500 shard reads, not 500 x 500, and its wall time does not
grow with the number of shards. Whatever spans partitions (no key twice across shards, counts) is
read from indexes and manifests by the dataset-level checks downstream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import pandas as pd

from dreamer_core.datasets.shards import Sample, read_entry, read_shard
from dreamer_core.errors import PipelineInputError
from dreamer_core.poses.bank import read_pose_bank

Measure = Callable[[Iterator[Sample]], tuple[dict[str, Any], bool]]


def _count_only(samples: Iterator[Sample]) -> tuple[dict[str, Any], bool]:
    for _ in samples:
        pass
    return {}, True


def _training(sample: Sample) -> str:
    return "train"


def shard_partition_check(storage: Any, asset: str, shard: str, measure: Measure = _count_only,
                          shard_file: str | None = None,
                          pose_split: Callable[[Sample], str] = _training) -> dg.AssetCheckResult:  # fmt: skip
    """Pass when the partition's shard (``shard_file`` in the asset's folder, by default
    ``<shard>.tar``) is committed (its index entry exists), reads back with the entry's SHA-256,
    holds exactly the entry's keys and its manifest part's (``manifest-<shard>.parquet``) keys in
    the same order with the same pose ids in its labels, every pose is a pose of the split
    ``pose_split`` names for its sample (a training pose by default: shards feed tuning and DPO),
    and ``measure`` (which sees every decoded sample) passes. A broken shard or manifest part fails
    the check with the reason in its metadata."""
    folder = storage.asset_dir(asset)
    path = folder / (shard_file or f"{shard}.tar")
    keys: list[str] = []
    poses: list[str] = []
    wanted: dict[str, list[str]] = {}

    def tapped(entry: dict[str, Any]) -> Iterator[Sample]:
        for s in read_shard(path, entry["sha256"], entry.get("keys")):
            keys.append(s.key)
            poses.append(str(s.labels.get("pose_id")))
            wanted.setdefault(pose_split(s), []).append(poses[-1])
            yield s

    try:
        entry = read_entry(path.parent, path.name)
        extra, ok = measure(tapped(entry))
        part = pd.read_parquet(folder / f"manifest-{shard}.parquet", columns=["key", "pose_id"])
        bank = read_pose_bank(storage.asset_dir("pose_bank"))
        leaked = [p for split, ids in wanted.items() for p in bank.not_in_split(ids, split)]
    except (PipelineInputError, OSError, ValueError, KeyError) as exc:  # pyarrow: a missing column is a KeyError
        return dg.AssetCheckResult(passed=False, metadata={"shard": shard, "error": f"{type(exc).__name__}: {exc}"})
    same_keys = keys == list(part.key) == list(entry.get("keys", keys))
    same_poses = poses == [str(p) for p in part.pose_id]  # a stale manifest part with this shard's keys
    return dg.AssetCheckResult(
        passed=bool(keys) and same_keys and same_poses and ok and not leaked,
        metadata={
            "shard": shard,
            "samples": len(keys),
            "manifest_rows": len(part),
            "keys_agree": same_keys,
            "poses_agree": same_poses,
            "poses_of_another_split": len(leaked),
            **extra,
        },  # fmt: skip
    )
