"""DPO preference pairs streamed from the candidate shards: what ``train_dpo_stream`` reads instead
of every pair's winner, loser and control held in memory (at the ``full`` profile's 4,096 pairs at
512 px that is ~9 GB as uint8, ~25 GB as floats).

A control's candidates share one shard (``candidates.write_candidates``), so each of its pairs lies
in one shard: a shard is a unit of the stream (``datasets.stream.ShardStream``) whose samples are
the pairs it holds. Images stay uint8 until the training loop moves a batch to its device; each
pair carries its row in the pair table, which names its prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dreamer_core.datasets.shards import ShardError, index_keys, read_index, read_shard
from dreamer_core.datasets.stream import Chunk, ShardRef, ShardStream
from dreamer_core.fingerprint import digest_of

Pair = tuple[int, str, str]  # (row in the pair table, winner candidate key, loser candidate key)


def _uint8_chw(images: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(a)).permute(2, 0, 1) for a in images])


@dataclass(frozen=True)
class PairDecoder:
    """Decodes a candidate shard into its pairs: ``winner``, ``loser`` and ``control`` uint8
    [P, 3, H, W] and ``pair`` (the rows of the pair table) [P]. Picklable: DataLoader workers run it."""

    pairs_of: dict[str, tuple[Pair, ...]]  # shard path -> its pairs, in pair-table order
    keys_of: dict[str, tuple[str, ...]]  # shard path -> its sample keys (from the index)

    def __call__(self, ref: ShardRef) -> Chunk:
        pairs = self.pairs_of[ref.path]
        wanted = {k for _, w, lo in pairs for k in (w, lo)}
        found = {s.key: s for s in read_shard(ref.path, ref.sha256, list(self.keys_of[ref.path])) if s.key in wanted}
        if missing := sorted(wanted - set(found)):
            raise ShardError(f"{ref.path}: candidate {missing[0]} of a pair is not in the shard its index "
                             "names: re-materialize dpo_pairs", fix="")  # fmt: skip
        return {
            "winner": _uint8_chw([found[w].image for _, w, _ in pairs]),
            "loser": _uint8_chw([found[lo].image for _, _, lo in pairs]),
            "control": _uint8_chw([found[w].control for _, w, _ in pairs]),
            "pair": torch.tensor([p for p, _, _ in pairs], dtype=torch.long),
        }

    def fingerprint(self) -> str:
        return digest_of(sorted((path, list(map(list, pairs))) for path, pairs in self.pairs_of.items()))


def pair_refs(folder: str | Path, winners: Sequence[str], losers: Sequence[str]) -> tuple[list[ShardRef], PairDecoder]:
    """The candidate shards of ``folder`` that hold pairs (pair i is ``winners[i]`` vs ``losers[i]``),
    each a ref whose sample count is its number of pairs, and the decoder that reads them. Only
    indexes are read; a pair whose candidates are in no shard, or in two, is an error."""
    if len(winners) != len(losers):
        raise ValueError(f"{len(winners)} winners but {len(losers)} losers")
    if not winners:
        raise ValueError("no preference pairs to train on: loosen dpo.min_gap / dpo.min_winner_oks or add candidates")
    folder = Path(folder)
    index, shard_of = read_index(folder), {}
    keys = index_keys(folder, index)
    for name, names in keys.items():
        shard_of.update(dict.fromkeys(names, name))
    pairs: dict[str, list[Pair]] = {}
    for i, (w, lo) in enumerate(zip(winners, losers, strict=True)):
        where = {shard_of.get(w), shard_of.get(lo)}
        if None in where or len(where) != 1:
            raise ShardError(f"{folder}: pair {i} ({w} vs {lo}) is not in one candidate shard: re-materialize "
                             "dpo_pairs", fix="")  # fmt: skip
        pairs.setdefault(where.pop(), []).append((i, w, lo))
    refs = [ShardRef(str(folder / name), len(pairs[name]), index[name]["sha256"]) for name in index if name in pairs]
    decoder = PairDecoder({str(folder / n): tuple(p) for n, p in pairs.items()},
                          {str(folder / n): tuple(keys[n]) for n in pairs})  # fmt: skip
    return refs, decoder


def pair_stream(folder: str | Path, winners: Sequence[str], losers: Sequence[str], batch_pairs: int, seed: int,
                workers: int = 0) -> ShardStream:  # fmt: skip
    """Endless batches of ``batch_pairs`` pairs (fewer when there are fewer pairs), every pair once
    per epoch, in an order that depends only on the shards, the pairs and ``seed``."""
    refs, decoder = pair_refs(folder, winners, losers)
    return ShardStream(refs, decoder, min(batch_pairs, len(winners)), seed=seed, workers=workers)
