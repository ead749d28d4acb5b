"""reference_renders' partition plan: every planned sample (or subject) in exactly one partition,
multi-view shards of whole subjects, and a version only once every partition is committed with
the plan's range and what the plan renders with."""

import json

import pytest

from dreamer_core.config import ReferenceRendersSettings
from dreamer_core.datasets.reference_plan import (
    commit_record,
    missing_parts,
    part_of,
    plan,
    planned_keys,
    record_file,
    reference_version,
    views_per_subject,
    write_plan,
)
from dreamer_core.errors import PipelineInputError

REF = ReferenceRendersSettings.from_mapping(
    {"num_train": 25, "num_val": 3, "num_test": 10, "multiview_subjects": 7, "multiview_heldout": 2,
     "views_per_ring": 3, "elevations_deg": [0.0, 20.0], "samples_per_shard": 10}, "test."
)  # fmt: skip


def test_every_planned_sample_is_in_one_partition():
    parts = plan(REF)
    for split, total in (("train", 25), ("val", 3), ("test", 10)):
        mine = [p for p in parts if p.split == split]
        assert [p.shard for p in mine] == list(range(len(mine)))
        assert [i for p in mine for i in range(p.start, p.stop)] == list(range(total))
        assert all(p.stop - p.start <= 10 for p in mine)
    rings = [p for p in parts if p.split == "multiview"]  # 6 views a subject: one subject per 10-sample shard
    assert views_per_subject(REF) == 6 and [(p.start, p.stop) for p in rings] == [(i, i + 1) for i in range(7)]
    assert len({p.key for p in parts}) == len(parts) and part_of(REF, "train-000002").shard_file == (
        "train/shard-000002.tar")  # fmt: skip
    with pytest.raises(PipelineInputError, match="no partition 'train-000003'"):
        part_of(REF, "train-000003")


def test_version_waits_for_every_partition(tmp_path):
    with pytest.raises(PipelineInputError, match="partitions.json: missing"):
        reference_version(tmp_path)
    write_plan(tmp_path, REF, "x")
    parts = plan(REF)
    for p in parts[1:]:
        (tmp_path / record_file(p.key)).write_text(json.dumps(commit_record(p, p.stop - p.start, "ab", {}, "x")))
    assert missing_parts(tmp_path) == ["train-000000"]
    with pytest.raises(PipelineInputError, match=r"1 of 12 partitions are not materialized \(train-000000\)"):
        reference_version(tmp_path)
    (tmp_path / record_file("train-000000")).write_text(json.dumps(commit_record(parts[0], 10, "cd", {}, "x")))
    version = reference_version(tmp_path)
    (tmp_path / record_file("train-000000")).write_text(json.dumps(commit_record(parts[0], 10, "ef", {}, "x")))
    assert reference_version(tmp_path) != version  # a re-rendered shard is a new version
    (tmp_path / record_file("val-000000")).write_text("{not json")
    with pytest.raises(PipelineInputError, match="val-000000"):
        reference_version(tmp_path)


def test_stale_partitions_are_named_not_mixed_in(tmp_path):
    """A changed num_train, seed or pose bank must not leave old shards in a "complete" dataset:
    records with another range or another ``rendered_with`` than the plan's are stale."""
    write_plan(tmp_path, REF, "old")
    for p in plan(REF):
        (tmp_path / record_file(p.key)).write_text(json.dumps(commit_record(p, p.stop - p.start, "ab", {}, "old")))
    reference_version(tmp_path)
    grown = ReferenceRendersSettings.from_mapping({**REF.to_dict(), "num_train": 34}, "test.")
    write_plan(tmp_path, grown, "old")  # train-000002 was 20..25 and is now 20..30; train-000003 is new
    with pytest.raises(
        PipelineInputError,
        match=r"1 of 13 partitions are not materialized \(train-000003\); "
        r"1 were rendered with other settings, another pose bank or another plan \(train-000002\)",
    ):
        reference_version(tmp_path)
    for key in ("train-000002", "train-000003"):
        p = part_of(grown, key)
        (tmp_path / record_file(key)).write_text(json.dumps(commit_record(p, 10, "cd", {}, "old")))
    reference_version(tmp_path)
    write_plan(tmp_path, grown, "new")  # one partition ran with another seed: every other one is stale now
    p = part_of(grown, "val-000000")
    (tmp_path / record_file(p.key)).write_text(json.dumps(commit_record(p, 3, "ef", {}, "new")))
    with pytest.raises(PipelineInputError, match="12 were rendered with other settings"):
        reference_version(tmp_path)


def test_planned_keys_follow_the_split_and_the_rings():
    assert planned_keys(part_of(REF, "train-000002"), 6) == [f"train{i:06d}" for i in range(20, 25)]
    assert planned_keys(part_of(REF, "multiview-000003"), 6) == [f"mv0003v{k:02d}" for k in range(6)]
