"""How ``reference_renders`` splits into partitions, one shard each, so a backfill fans out.

A partition is one shard of one split: ``train-000003`` is ``train/shard-000003.tar``, holding the
planned samples 3 x per_shard ... 4 x per_shard - 1 of the training split (a sample's key and random
stream come from its place in the split, so any shard renders alone and the same as in one run);
``multiview-000001`` holds whole subjects (GST streams them a shard at a time). Each partition run
writes its shard, its manifest part ``manifest-<key>.parquet`` and last its commit record
``part-<key>.json``; ``partitions.json`` records the plan. Readers call ``reference_version`` first:
it fails, naming the missing partitions, until every planned partition is committed, and its hash
of the records is the version downstream runs are tagged with. Nothing here reads an image.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dreamer_core.config import ReferenceRendersSettings
from dreamer_core.datasets.shards import shard_name
from dreamer_core.errors import PipelineInputError
from dreamer_core.fingerprint import digest_of
from dreamer_core.io import write_json_atomic
from dreamer_core.poses.splits import SPLITS

PLAN_FILE = "partitions.json"
KINDS = (*SPLITS, "multiview")


@dataclass(frozen=True)
class Part:
    """One partition: its key, its split, its shard index and the planned range it renders (samples
    of a split, or subjects of the multi-view rings)."""

    key: str
    split: str
    shard: int
    start: int
    stop: int

    @property
    def shard_file(self) -> str:
        """The shard's path inside the asset folder."""
        return f"{self.split}/{shard_name(self.shard)}"


def views_per_subject(ref: ReferenceRendersSettings) -> int:
    return ref.views_per_ring * len(ref.elevations_deg)


def plan(ref: ReferenceRendersSettings) -> list[Part]:
    """Every partition of the settings, split by split (train, val, test, multiview)."""
    parts = []
    for split in KINDS:
        if split == "multiview":  # a shard holds whole subjects, as many as fit in samples_per_shard
            total, per = ref.multiview_subjects, max(1, ref.samples_per_shard // views_per_subject(ref))
        else:
            total, per = getattr(ref, f"num_{split}"), ref.samples_per_shard
        for i in range(math.ceil(total / per)):
            parts.append(Part(f"{split}-{i:06d}", split, i, i * per, min(total, (i + 1) * per)))
    return parts


def part_of(ref: ReferenceRendersSettings, key: str) -> Part:
    """The partition ``key`` of the settings' plan; a key the plan lacks is a clear error."""
    for part in plan(ref):
        if part.key == key:
            return part
    raise PipelineInputError(f"reference_renders has no partition {key!r} under these settings (its plan: "
                             f"{len(plan(ref))} partitions); they follow params.yaml's reference_renders")  # fmt: skip


def plan_record(ref: ReferenceRendersSettings) -> dict[str, Any]:
    """What ``partitions.json`` holds: the partitions and the settings that shape them."""
    return {"settings": ref.to_dict(), "partitions": [asdict(p) for p in plan(ref)]}


def write_plan(folder: Path, ref: ReferenceRendersSettings) -> None:
    write_json_atomic(folder / PLAN_FILE, plan_record(ref))


def read_plan(folder: Path) -> list[Part]:
    path = Path(folder) / PLAN_FILE
    try:
        record = json.loads(path.read_text())
        return [Part(**p) for p in record["partitions"]]
    except FileNotFoundError as exc:
        raise PipelineInputError(f"{path}: missing; materialize reference_renders") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineInputError(f"{path}: corrupt partition plan ({exc}); re-materialize reference_renders") from exc


def record_file(key: str) -> str:
    return f"part-{key}.json"


def commit_record(part: Part, num_samples: int, sha256: str, skipped: dict[str, int], params: str) -> dict[str, Any]:
    """A partition's commit record, written last by its run: the shard's hash and counts, and the
    hash of the settings it was rendered with."""
    return {**asdict(part), "num_samples": num_samples, "sha256": sha256, "skipped": skipped, "params": params}


def missing_parts(folder: Path) -> list[str]:
    """The planned partitions with no commit record (never run, running, or killed)."""
    folder = Path(folder)
    return [p.key for p in read_plan(folder) if not (folder / record_file(p.key)).is_file()]


def reference_version(folder: Path) -> str:
    """The version of a complete ``reference_renders``: a hash of the plan and every partition's
    commit record (its shard's SHA-256, counts and settings). Fails, naming what is missing, while a
    planned partition has no record, so no reader trains on part of the dataset."""
    folder = Path(folder)
    parts = read_plan(folder)
    missing = missing_parts(folder)
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise PipelineInputError(f"{folder}: {len(missing)} of {len(parts)} partitions are not materialized "
                                 f"({shown}); run `python -m orchestration.cli materialize reference_renders`"
                                 )  # fmt: skip
    records = []
    for p in parts:
        try:
            records.append(json.loads((folder / record_file(p.key)).read_text()))
        except ValueError as exc:
            raise PipelineInputError(f"{folder / record_file(p.key)}: corrupt ({exc}); re-materialize "
                                     f"reference_renders partition {p.key}") from exc  # fmt: skip
    return digest_of({"plan": [asdict(p) for p in parts], "records": records})[:16]
