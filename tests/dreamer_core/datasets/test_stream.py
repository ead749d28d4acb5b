"""The training stream: each rank its own shards, every sample once per epoch, batches that do not
depend on the number of loader workers, and a resumed stream that continues where it stopped."""

from __future__ import annotations

import pytest
import torch

from dreamer_core.datasets.shards import ShardError
from dreamer_core.datasets.stream import ShardRef, ShardStream


class Rows:
    """Decodes a ref into its sample ids (row i holds the value i): what was read, and in which order."""

    def __call__(self, ref: ShardRef) -> dict[str, torch.Tensor]:
        ids = torch.arange(ref.start, ref.start + ref.num_samples)
        return {"id": ids, "image": (ids % 256).to(torch.uint8)}


def refs(sizes: list[int]) -> list[ShardRef]:
    out, start = [], 0
    for i, n in enumerate(sizes):
        out.append(ShardRef(f"shard-{i}", n, None, start))
        start += n
    return out


SIZES = [5, 3, 7, 4, 6, 2, 5]  # 32 samples in shards of uneven size


def ids(stream: ShardStream, n: int, start: int = 0) -> list[int]:
    it = stream.batches(start)
    return [int(i) for _ in range(n) for i in next(it)["id"]]


def test_ranks_read_disjoint_shards_that_cover_every_sample_once_per_epoch():
    world = 3
    streams = [ShardStream(refs(SIZES), Rows(), batch_size=1, seed=5, rank=r, world=world) for r in range(world)]
    for epoch in (0, 1):
        parts = [[r.path for r in s.epoch_refs(epoch)] for s in streams]
        assert sorted(p for part in parts for p in part) == sorted(f"shard-{i}" for i in range(len(SIZES)))
        seen = [sum(r.num_samples for r in s.epoch_refs(epoch)) for s in streams]
        assert sum(seen) == sum(SIZES)
    # One epoch of rank 0 read sample by sample: exactly the samples of its shards, each once.
    s0 = streams[0]
    mine = sorted(i for r in s0.epoch_refs(0) for i in range(r.start, r.start + r.num_samples))
    assert sorted(ids(s0, len(mine))) == mine
    assert [r.path for r in s0.epoch_refs(0)] != [r.path for r in s0.epoch_refs(1)]  # reshuffled per epoch


def test_batches_do_not_depend_on_the_number_of_workers():
    base = ShardStream(refs(SIZES), Rows(), batch_size=6, seed=1, mix=2)
    expected = ids(base, 12)  # 72 samples: across two epoch boundaries
    assert sorted(expected[:32]) == list(range(32))  # the first epoch holds every sample once
    for workers in (1, 3):
        assert ids(ShardStream(refs(SIZES), Rows(), batch_size=6, seed=1, mix=2, workers=workers), 12) == expected


def test_a_resumed_stream_continues_with_the_batches_the_uninterrupted_one_saw():
    stream = ShardStream(refs(SIZES), Rows(), batch_size=5, seed=2, mix=3)
    straight = ids(stream, 20)
    for step in (1, 6, 7, 13):  # inside a window, at an epoch boundary (32 / 5), later epochs
        assert ids(stream, 20 - step, start=step) == straight[step * 5 :]


def test_images_stay_uint8_and_counts_are_checked():
    batch = next(ShardStream(refs(SIZES), Rows(), batch_size=4).batches())
    assert batch["image"].dtype == torch.uint8
    lying = [ShardRef("shard-0", 9, None, 0)]  # the index says 9; the decoder below yields 8

    class Short(Rows):
        def __call__(self, ref):
            return super().__call__(ShardRef(ref.path, ref.num_samples - 1, None, ref.start))

    with pytest.raises(ShardError, match="holds 8 samples, its index says 9"):
        next(ShardStream(lying, Short(), batch_size=2).batches())


def test_more_ranks_than_shards_is_a_clear_error():
    with pytest.raises(ShardError, match="2 shard\\(s\\) cannot feed 3 ranks"):
        ShardStream(refs([4, 4]), Rows(), batch_size=2, world=3)
