"""Pose diversity in root-aligned joint space: farthest-point selection and NN distances.

Distance between two poses = RMS over skeleton joints of the 3D distance between corresponding
joints, after removing the root's position and orientation (so the metric sees articulation only).
"""

from __future__ import annotations

import numpy as np
import torch


def pairwise_rms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a [N, J, 3], b [M, J, 3] -> [N, M] RMS joint distance."""
    j = a.shape[1]
    return torch.cdist(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)) / j**0.5


def farthest_point_indices(points: torch.Tensor, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy farthest-point selection of ``k`` of ``points`` [N, J, 3] (random start)."""
    n = points.shape[0]
    if k >= n:
        return np.arange(n)
    flat = points.reshape(n, -1).to(torch.float64)
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = int(rng.integers(n))
    dist = torch.full((n,), float("inf"), dtype=torch.float64)
    scale = points.shape[1] ** 0.5
    for i in range(1, k):
        d = (flat - flat[chosen[i - 1]]).norm(dim=1) / scale
        dist = torch.minimum(dist, d)
        chosen[i] = int(dist.argmax())
    return chosen


def mean_nn_distance(points: torch.Tensor, chunk: int = 2048) -> float:
    """Mean over poses of the distance to the nearest other pose in the same set."""
    n = points.shape[0]
    if n < 2:
        return 0.0
    mins = []
    for start in range(0, n, chunk):
        d = pairwise_rms(points[start : start + chunk], points)
        idx = torch.arange(start, min(start + chunk, n))
        d[torch.arange(len(idx)), idx] = float("inf")
        mins.append(d.min(dim=1).values)
    return float(torch.cat(mins).mean())
