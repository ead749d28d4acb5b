"""Perceptual hashes (DCT pHash, 64 bits) and near-duplicate search by Hamming distance.

The search splits each hash into ``d + 1`` bands: two hashes within distance ``d`` agree exactly
on at least one band (pigeonhole), so only samples sharing a band are compared. That keeps
near-duplicate removal exact and close to linear on datasets of hundreds of thousands.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from PIL import Image
from scipy.fft import dctn


def phash(images: np.ndarray, hash_size: int = 8, highfreq: int = 4) -> np.ndarray:
    """uint8 [N, H, W, 3] -> uint64 [N]: sign of the low-frequency DCT of a 32x32 grey thumbnail
    against its median."""
    side = hash_size * highfreq
    out = np.empty(len(images), dtype=np.uint64)
    weights = np.uint64(1) << np.arange(hash_size * hash_size, dtype=np.uint64)
    for i, img in enumerate(images):
        g = np.asarray(Image.fromarray(img).convert("L").resize((side, side), Image.Resampling.LANCZOS), np.float64)
        low = dctn(g, norm="ortho")[:hash_size, :hash_size].reshape(-1)
        bits = low > np.median(low[1:])
        out[i] = np.bitwise_or.reduce(np.where(bits, weights, np.uint64(0)))
    return out


def hamming(a: np.uint64 | np.ndarray, b: np.ndarray) -> np.ndarray:
    x = np.atleast_1d(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def _bands(h: np.uint64, edges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    v = int(h)
    return [(i, (v >> lo) & ((1 << (hi - lo)) - 1)) for i, (lo, hi) in enumerate(edges)]


def near_duplicates(hashes: np.ndarray, candidates: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy in index order over the ``candidates`` mask: a candidate within ``max_distance`` of
    an earlier accepted one is a duplicate. Returns (index of the earlier sample or -1, distance to
    the nearest earlier accepted sample or 65 when none shares a band)."""
    n_bands = min(max_distance + 1, 64)
    cuts = np.linspace(0, 64, n_bands + 1).round().astype(int)
    edges = [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    table: dict[tuple[int, int], list[int]] = defaultdict(list)
    dup_of = np.full(len(hashes), -1, dtype=np.int64)
    nearest = np.full(len(hashes), 65, dtype=np.int64)
    for i in np.flatnonzero(candidates):
        bands = _bands(hashes[i], edges)
        others = sorted({j for b in bands for j in table.get(b, ())})
        if others:
            d = hamming(hashes[i], hashes[others])
            k = int(np.argmin(d))
            nearest[i] = int(d[k])
            if d[k] <= max_distance:
                dup_of[i] = others[k]
                continue
        for b in bands:
            table[b].append(int(i))
    return dup_of, nearest
