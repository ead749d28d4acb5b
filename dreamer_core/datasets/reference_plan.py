"""How ``reference_renders`` splits into partitions, one shard each, so a backfill fans out.

A partition is one shard of one split: ``train-000003`` is ``train/shard-000003.tar``, holding the
planned samples 3 x per_shard ... 4 x per_shard - 1 of the training split (a sample's key and random
stream come from its place in the split, so any shard renders alone and the same as in one run);
``multiview-000001`` holds whole subjects (GST streams them a shard at a time). Each partition run
writes its shard, its manifest part ``manifest-<key>.parquet`` and last its commit record
``part-<key>.json``; ``partitions.json`` records the plan and what the latest run rendered with
(the settings' and the pose bank's hashes). Readers call ``reference_version`` first: it fails,
naming them, while a planned partition has no record or a record that does not match the plan
(its range, or rendered with other settings or another pose bank: a changed ``num_train`` or seed
must not leave old shards mixed into a "complete" dataset), and its hash of the records is the
version downstream runs are tagged with. Nothing here reads an image.
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


def sample_key(split: str, index: int) -> str:
    """The key of a split's planned sample ``index`` (its place in the split, not in a shard)."""
    return f"{split}{index:06d}"


def view_key(subject: int, view: int) -> str:
    """The key of a multi-view subject's view."""
    return f"mv{subject:04d}v{view:02d}"


def planned_keys(part: Part, views: int) -> list[str]:
    """The keys a partition renders: its samples in order, or every view of each of its subjects
    (a split's sample whose every camera draw fails is dropped, so a shard may hold fewer)."""
    if part.split == "multiview":
        return [view_key(s, k) for s in range(part.start, part.stop) for k in range(views)]
    return [sample_key(part.split, i) for i in range(part.start, part.stop)]


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


def plan_record(ref: ReferenceRendersSettings, rendered_with: str) -> dict[str, Any]:
    """What ``partitions.json`` holds: the partitions, the settings that shape them, and
    ``rendered_with``, the hash of everything a partition's pixels depend on (settings, seed, pose
    bank) that every committed partition must share."""
    return {"settings": ref.to_dict(), "rendered_with": rendered_with, "partitions": [asdict(p) for p in plan(ref)]}


def write_plan(folder: Path, ref: ReferenceRendersSettings, rendered_with: str) -> None:
    write_json_atomic(folder / PLAN_FILE, plan_record(ref, rendered_with))


def read_plan_file(folder: Path) -> dict[str, Any]:
    path = Path(folder) / PLAN_FILE
    try:
        record = json.loads(path.read_text())
        record["partitions"] = [Part(**p) for p in record["partitions"]]
        record["rendered_with"] = str(record["rendered_with"])
        return record
    except FileNotFoundError as exc:
        raise PipelineInputError(f"{path}: missing; materialize reference_renders") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineInputError(f"{path}: corrupt partition plan ({exc}); re-materialize reference_renders") from exc


def read_plan(folder: Path) -> list[Part]:
    return read_plan_file(folder)["partitions"]


def record_file(key: str) -> str:
    return f"part-{key}.json"


def commit_record(part: Part, num_samples: int, sha256: str, skipped: dict[str, int], rendered_with: str,
                  ) -> dict[str, Any]:  # fmt: skip
    """A partition's commit record, written last by its run: its planned range, the shard's hash and
    counts, and what it was rendered with (``plan_record``)."""
    return {**asdict(part), "num_samples": num_samples, "sha256": sha256, "skipped": skipped,
            "rendered_with": rendered_with}  # fmt: skip


def read_record(folder: Path, key: str) -> dict[str, Any] | None:
    """A partition's commit record, or None while it has none (never run, running, killed, or
    removed by a rerun between listing and reading)."""
    path = Path(folder) / record_file(key)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PipelineInputError(f"{path}: corrupt ({exc}); re-materialize reference_renders partition {key}") from exc
    if not isinstance(record, dict):
        raise PipelineInputError(f"{path}: not a commit record; re-materialize reference_renders partition {key}")
    return record


def record_matches(record: dict[str, Any], part: Part, rendered_with: str) -> bool:
    """Whether a commit record vouches for ``part`` of the current plan: the same planned range,
    rendered with the same settings, seed and pose bank."""
    return all(record.get(k) == v for k, v in asdict(part).items()) and record.get("rendered_with") == rendered_with


def missing_parts(folder: Path) -> list[str]:
    """The planned partitions with no commit record (never run, running, or killed)."""
    folder = Path(folder)
    return [p.key for p in read_plan(folder) if read_record(folder, p.key) is None]


def _shown(keys: list[str]) -> str:
    return ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")


def reference_version(folder: Path) -> str:
    """The version of a complete ``reference_renders``: a hash of the plan and every partition's
    commit record (its shard's SHA-256, counts and what it was rendered with). Fails, naming them,
    while a planned partition has no record or a stale one (another range, settings or pose bank
    than the plan's), so no reader trains on part of the dataset or on a mix of two."""
    folder = Path(folder)
    head = read_plan_file(folder)
    parts, rendered_with = head["partitions"], head["rendered_with"]
    records = {p.key: read_record(folder, p.key) for p in parts}
    missing = [k for k, r in records.items() if r is None]
    stale = [p.key for p in parts if (r := records[p.key]) is not None and not record_matches(r, p, rendered_with)]
    what = [f"{len(missing)} of {len(parts)} partitions are not materialized ({_shown(missing)})"] if missing else []
    if stale:
        what.append(
            f"{len(stale)} were rendered with other settings, another pose bank or another plan ({_shown(stale)})"
        )
    if what:
        raise PipelineInputError(f"{folder}: {'; '.join(what)}; run `python -m orchestration.cli materialize "
                                 "reference_renders` for those partitions")  # fmt: skip
    return digest_of({"plan": [asdict(p) for p in parts], "records": [records[p.key] for p in parts]})[:16]
