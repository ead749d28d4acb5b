"""Seeded random streams: one independent generator per (seed, purpose, ...) so that any sample,
shard or split can be regenerated on its own, whatever else ran before it."""

from __future__ import annotations

import hashlib

import numpy as np


def stream(seed: int, *names: str) -> np.random.Generator:
    """An independent RNG stream per purpose, derived by hashing (seed, names)."""
    digest = hashlib.sha256(repr((seed, *names)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))
