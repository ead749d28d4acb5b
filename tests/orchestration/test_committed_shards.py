"""Which generation shards count as finished: none before any index exists, and a malformed index is
an error, not a round that silently has no shards (the hardness model would then train on less)."""

import pytest

from dreamer_core.datasets.shards import ShardError, publish_shard
from orchestration.assets.mining import committed_shards
from orchestration.resources import StorageResource
from tests.dreamer_core.datasets.test_shards import make_sample


def test_committed_shards_need_an_index_and_a_live_partition(tmp_path):
    storage = StorageResource(root=str(tmp_path))
    folder = tmp_path / "round1_generations"
    folder.mkdir()
    assert committed_shards(storage, "round1_generations", ["r1-000000"]) == []
    publish_shard(folder, "r1-000000.tar", [make_sample(0)])
    publish_shard(folder, "r1-000001.tar", [make_sample(1)])
    assert committed_shards(storage, "round1_generations", ["r1-000000"]) == ["r1-000000"]  # r1-000001: no partition
    (folder / "r1-000001.tar.index.json").write_text('{"r1-000001.tar": {"num_samples": 1}}')
    with pytest.raises(ShardError, match="index entry is malformed"):
        committed_shards(storage, "round1_generations", ["r1-000000", "r1-000001"])


def test_a_round_shard_is_rewritten_index_first_and_its_manifest_is_held_to_the_index(tmp_path, monkeypatch):
    """A rewrite takes the old index out before anything else, so a rewrite killed midway leaves a
    shard no reader counts (not the old shard vouched for beside a new manifest); a manifest part
    that is not the one its index recorded is refused."""
    import dagster as dg

    from orchestration.assets.mining import _publish_round_shard, round_manifest

    storage = StorageResource(root=str(tmp_path))
    folder = tmp_path / "round1_generations"
    folder.mkdir()
    rows = [{"key": "s000000", "oks": 0.5}]
    _publish_round_shard(folder, "shard-000000", rows, [make_sample(0)])
    assert committed_shards(storage, "round1_generations", ["shard-000000"]) == ["shard-000000"]
    assert round_manifest(storage, "round1_generations", ["shard-000000"]).oks.tolist() == [0.5]
    from dreamer_core.datasets.build import write_manifest

    write_manifest(folder / "manifest-shard-000000.parquet", [{"key": "s000000", "oks": 0.9}])  # not committed
    with pytest.raises(dg.Failure, match="not the manifest its shard's index records"):
        round_manifest(storage, "round1_generations", ["shard-000000"])
    from orchestration.assets import mining

    def killed(*args):  # the process dies while it writes the new manifest
        raise SystemExit("killed")

    monkeypatch.setattr(mining, "write_manifest", killed)
    with pytest.raises(SystemExit):
        _publish_round_shard(folder, "shard-000000", rows, [make_sample(0)])
    assert committed_shards(storage, "round1_generations", ["shard-000000"]) == []  # the old index went first
    with pytest.raises((dg.Failure, ShardError), match=r"no shard index|records \(none"):  # a reader's old list
        round_manifest(storage, "round1_generations", ["shard-000000"])
