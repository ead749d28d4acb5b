"""The streaming shard writer: what it publishes equals what ``write_samples`` writes from the whole
list, and each shard is on disk (committed by its index) as soon as it fills, before the next
sample is even rendered: a split never sits in memory. A split rendered a partition at a time
equals the split rendered in one run."""

import hashlib

import numpy as np

from dreamer_core.datasets.build import BuildReport, ShardWriter, render_multiview, render_samples, write_samples
from dreamer_core.datasets.shards import read_entry, read_index
from dreamer_core.render.renderer import BodyRenderer
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


def _same(a, b):
    assert [s.key for s in a] == [s.key for s in b]
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask), x.key
        assert x.labels["seed"] == y.labels["seed"] and x.labels["pose_id"] == y.labels["pose_id"], x.key
        # posed in other batches: the body model's float sums may differ in the last bits
        assert np.allclose(x.labels["keypoints_2d"], y.labels["keypoints_2d"], atol=1e-4), x.key


def test_a_partition_renders_what_one_run_over_the_split_renders(anny_body):
    """reference_renders renders each shard in its own run (``first=`` its place in the split): the
    shards of a split, concatenated, hold the samples one run over the whole split renders (keys,
    random streams, pixels), for the splits and for the multi-view rings."""
    from tests.helpers.renders import SETTINGS, small_bank

    bank, renderer = small_bank(anny_body, 9, seed=4), BodyRenderer(anny_body)
    rows = np.arange(9)
    args = (SETTINGS, 5, "reference-train", "train", True)
    whole = render_samples(anny_body, renderer, bank, rows, *args, BuildReport(), "whole")
    parts = [s for a, b in ((0, 4), (4, 9)) for s in
             render_samples(anny_body, renderer, bank, rows[a:b], *args, BuildReport(), "part", first=a)]  # fmt: skip
    assert [s.key for s in whole] == [f"train{i:06d}" for i in range(9)]
    _same(parts, whole)

    held = rows >= 6
    mv = (SETTINGS, 2, [10.0], 3.0, 5)
    ring, _ = render_multiview(anny_body, renderer, bank, rows, held, *mv, BuildReport())
    split = [s for a, b in ((0, 5), (5, 9))
             for s in render_multiview(anny_body, renderer, bank, rows[a:b], held[a:b], *mv, BuildReport(), first=a)[0]
             ]  # fmt: skip
    _same(split, ring)
