"""Seeded randomness, written once: an independent random stream, or one integer seed, per
(global seed, purpose, ...), so that any sample, shard or split can be regenerated on its own,
whatever else ran before it, on any machine and with any batching."""

from __future__ import annotations

import hashlib

import numpy as np


def stream(seed: int, *names: str) -> np.random.Generator:
    """An independent RNG stream per purpose, derived by hashing (seed, names)."""
    digest = hashlib.sha256(repr((seed, *names)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def derive_seed(seed: int, *names: object) -> int:
    """A sample seed from (global seed, purpose, ...): stable across runs, machines and batching."""
    return int(stream(seed, *map(str, names)).integers(0, 2**31 - 1))
