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


def shard_partition_check(storage: Any, asset: str, shard: str, measure: Measure = _count_only) -> dg.AssetCheckResult:
    """Pass when the partition's shard is committed (its index entry exists), reads back with the
    entry's SHA-256, holds exactly the entry's keys and its manifest part's keys in the same order
    with the same pose ids in its labels, every pose is a training pose (shards feed tuning and
    DPO), and ``measure`` (which sees every decoded sample) passes. A broken shard or manifest part
    fails the check with the reason in its metadata."""
    folder = storage.asset_dir(asset)
    keys: list[str] = []
    poses: list[str] = []

    def tapped(entry: dict[str, Any]) -> Iterator[Sample]:
        for s in read_shard(folder / f"{shard}.tar", entry["sha256"], entry.get("keys")):
            keys.append(s.key)
            poses.append(str(s.labels.get("pose_id")))
            yield s

    try:
        entry = read_entry(folder, f"{shard}.tar")
        extra, ok = measure(tapped(entry))
        part = pd.read_parquet(folder / f"manifest-{shard}.parquet", columns=["key", "pose_id"])
        leaked = read_pose_bank(storage.asset_dir("pose_bank")).not_in_split(poses)
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
            "non_training_poses": len(leaked),
            **extra,
        },  # fmt: skip
    )
