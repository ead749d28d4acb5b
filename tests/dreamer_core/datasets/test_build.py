"""The streaming shard writer: what it publishes equals what ``write_samples`` writes from the whole
list, and each shard is on disk (committed by its index) as soon as it fills, before the next
sample is even rendered: a split never sits in memory."""

import hashlib

from dreamer_core.datasets.build import ShardWriter, write_samples
from dreamer_core.datasets.shards import read_entry, read_index
from tests.dreamer_core.datasets.test_shards import make_sample


def _files(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_streamed_shards_equal_the_listed_ones_and_publish_as_they_fill(tmp_path):
    samples = [make_sample(i) for i in range(7)]
    extras = [{"subject": i // 3} for i in range(7)]
    listed = write_samples(tmp_path / "listed", samples, 3, "train", extra_rows=extras)

    folder = tmp_path / "streamed"
    writer = ShardWriter(folder, 3, "train")
    committed = []
    for s, extra in zip(samples, extras, strict=True):
        writer.add(s, extra)
        committed.append(sorted(read_index(folder)) if any(folder.glob("*.index.json")) else [])
    assert committed[2] == ["shard-000000.tar"] and committed[5] == ["shard-000000.tar", "shard-000001.tar"]
    assert committed[6] == committed[5]  # the last, partly filled shard waits for close()
    assert writer.close() == listed
    assert _files(folder) == _files(tmp_path / "listed")
    assert read_entry(folder, "shard-000002.tar")["keys"] == ["s000006"]
    assert [r["shard"] for r in listed] == ["train/shard-000000.tar"] * 3 + ["train/shard-000001.tar"] * 3 + [
        "train/shard-000002.tar"]  # fmt: skip
