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
