"""Training batches streamed from shards: what every training loop reads instead of a split in memory.

A ``full`` split is hundreds of GB decoded (200k samples at 512 px), so no loop holds one. Each
epoch puts the shards in a seeded order and deals them to the data-parallel ranks (rank r takes
every world-th shard: disjoint sets that together hold every sample once per epoch). DataLoader
workers decode one shard each at a time (worker w takes every n-th shard of the rank's list; the
loader's round-robin hands them back in list order, so the batches do not depend on the number of
workers). Shards are mixed in windows of a few, permuted, and cut into batches that run across
shard and epoch boundaries. Images stay uint8 until the loop moves a batch to its device.

The batch sequence is a function of the shard index (paths, SHA-256, sample counts), the seed,
the rank and the world size alone, so a resumed run starts at its step's sample without decoding
what came before, and its batches are those the uninterrupted run saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dreamer_core.datasets.shards import ShardError, read_index
from dreamer_core.fingerprint import digest_of

Chunk = dict[str, torch.Tensor]  # tensors with one leading sample dimension


@dataclass(frozen=True)
class ShardRef:
    """One unit of streaming: a shard file (``sha256`` from its index), or ``rows`` [start, stop) of
    an in-memory set (``path`` names it) for sources that are not shards (a real dataset's frames)."""

    path: str
    num_samples: int
    sha256: str | None = None
    start: int = 0


def shard_refs(folders: Sequence[str | Path], verify: bool = True) -> list[ShardRef]:
    """The shards of ``folders`` from their indexes (no shard is read)."""
    refs = []
    for folder in folders:
        for name, entry in read_index(folder).items():
            refs.append(ShardRef(str(Path(folder) / name), int(entry["num_samples"]),
                                 entry["sha256"] if verify else None))  # fmt: skip
    return refs


def memory_refs(name: str, num_samples: int, rows_per_ref: int = 256) -> list[ShardRef]:
    """An in-memory set of ``num_samples`` rows cut into units like shards."""
    return [ShardRef(name, min(rows_per_ref, num_samples - s), None, s) for s in range(0, num_samples, rows_per_ref)]


def slice_chunk(chunk: Chunk, start: int, stop: int | None = None) -> Chunk:
    return {k: v[start:stop] for k, v in chunk.items()}


def concat_chunks(chunks: Sequence[Chunk]) -> Chunk:
    if len(chunks) == 1:
        return chunks[0]
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def chunk_size(chunk: Chunk) -> int:
    return len(next(iter(chunk.values())))


class _Decoded(IterableDataset):
    """The DataLoader side: decodes this worker's share of ``refs`` (every num_workers-th)."""

    def __init__(self, refs: list[ShardRef], decode: Callable[[ShardRef], Chunk]) -> None:
        self.refs, self.decode = refs, decode

    def __iter__(self) -> Iterator[Chunk]:
        info = get_worker_info()
        mine = self.refs if info is None else self.refs[info.id :: info.num_workers]
        for ref in mine:
            chunk = self.decode(ref)
            if chunk_size(chunk) != ref.num_samples:
                raise ShardError(f"{ref.path}: holds {chunk_size(chunk)} samples, its index says {ref.num_samples}")
            yield chunk


@dataclass
class ShardStream:
    """Endless batches of ``batch_size`` samples from ``refs`` for one rank of ``world``.

    ``decode`` turns a ref into a chunk (a module-level function or a picklable object: workers
    run it); ``mix`` shards are shuffled together before batching."""

    refs: list[ShardRef]
    decode: Callable[[ShardRef], Chunk]
    batch_size: int
    seed: int = 0
    rank: int = 0
    world: int = 1
    workers: int = 0
    mix: int = 4

    def __post_init__(self) -> None:
        if not self.refs:
            raise ShardError("no training shards: materialize the asset that writes them", fix="")
        if len(self.refs) < self.world:
            raise ShardError(f"{len(self.refs)} shard(s) cannot feed {self.world} ranks (each rank reads its own "
                             "shards): write at least as many shards as ranks", fix="")  # fmt: skip

    @property
    def num_samples(self) -> int:
        """Samples of one epoch over all ranks."""
        return sum(r.num_samples for r in self.refs)

    def fingerprint(self) -> str:
        """The data by content (paths, hashes, counts, and in-memory sets through the decoder's own
        ``fingerprint``): what a resume state is keyed to."""
        extra = getattr(self.decode, "fingerprint", lambda: None)()
        return digest_of([[[r.path, r.sha256, r.num_samples, r.start] for r in self.refs], extra])

    def epoch_refs(self, epoch: int) -> list[ShardRef]:
        """This rank's shards of ``epoch``, in reading order."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.refs))
        return [self.refs[i] for i in order[self.rank :: self.world]]

    def _windows(self, epoch: int) -> list[list[ShardRef]]:
        refs = self.epoch_refs(epoch)
        return [refs[i : i + self.mix] for i in range(0, len(refs), self.mix)]

    def _position(self, sample: int) -> tuple[int, int, int]:
        """(epoch, window, samples to drop in it) of this rank's ``sample``-th sample."""
        epoch = 0
        while True:
            windows = self._windows(epoch)
            total = sum(r.num_samples for w in windows for r in w)
            if total == 0:
                raise ShardError(f"rank {self.rank}: its shards hold no samples", fix="")
            if sample < total:
                break
            sample, epoch = sample - total, epoch + 1
        for i, window in enumerate(windows):
            n = sum(r.num_samples for r in window)
            if sample < n:
                return epoch, i, sample
            sample -= n
        raise AssertionError("unreachable: the sample lies in this epoch")

    def _loader(self, refs: list[ShardRef]) -> Iterator[Chunk]:
        workers = min(self.workers, len(refs))
        loader = DataLoader(_Decoded(refs, self.decode), batch_size=None, num_workers=workers,
                            prefetch_factor=2 if workers else None)  # fmt: skip
        return iter(loader)

    def batches(self, start_step: int = 0) -> Iterator[Chunk]:
        """Batch ``start_step``, then the ones after it, forever (epochs follow one another)."""
        epoch, first, drop = self._position(start_step * self.batch_size)
        pending: list[Chunk] = []
        held = 0
        while True:
            windows = self._windows(epoch)[first:]
            decoded = self._loader([r for w in windows for r in w])
            for i, window in enumerate(windows, start=first):
                mixed = concat_chunks([next(decoded) for _ in window])
                perm = np.random.default_rng([self.seed, epoch, self.rank, i]).permutation(chunk_size(mixed))
                mixed = {k: v[torch.from_numpy(perm)] for k, v in mixed.items()}
                if drop:
                    mixed, drop = slice_chunk(mixed, drop), 0
                pending.append(mixed)
                held += chunk_size(mixed)
                while held >= self.batch_size:
                    whole = concat_chunks(pending)
                    yield slice_chunk(whole, 0, self.batch_size)
                    rest = slice_chunk(whole, self.batch_size)
                    pending, held = [rest], chunk_size(rest)
            epoch, first = epoch + 1, 0


def to_device(batch: Chunk, device: torch.device | str = "cpu") -> Chunk:
    """A streamed batch on ``device``, its uint8 images as floats in [0, 1] (converted there, so only
    the uint8 bytes cross to the device)."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.float() / 255.0 if v.dtype == torch.uint8 else v for k, v in out.items()}
