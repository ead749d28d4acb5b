"""HMR training and test sets from shard folders: images resized to the model's input side, with
the intrinsics and 2D keypoints rescaled to match, so every label still reproduces its pixels.

Sets are held as tensors in memory (a few thousand 32-64 px crops are a few MB); ``full`` runs
with bigger sets stream shards instead (``dreamer_core.datasets.torch_dataset``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dreamer_core.datasets.shards import Sample, iter_folder
from dreamer_core.errors import PipelineInputError
from dreamer_core.hmr.train import samples_to_batch

Batch = dict[str, torch.Tensor]


def resize_batch(batch: Batch, size: int) -> Batch:
    """Square images to ``size`` (antialiased); K and keypoints scaled by the same factor."""
    side = batch["image"].shape[-1]
    if side == size:
        return batch
    s = size / side
    out = dict(batch)
    out["image"] = F.interpolate(batch["image"], size=(size, size), mode="bilinear", antialias=True,
                                 align_corners=False).clamp(0, 1)  # fmt: skip
    out["K"] = batch["K"].clone()
    out["K"][:, :2] *= s
    out["keypoints_2d"] = batch["keypoints_2d"].clone()
    out["keypoints_2d"][..., :2] *= s
    return out


def load_samples(samples: Iterable[Sample], size: int, what: str, chunk: int = 512) -> Batch:
    """Samples with images -> one resized batch (resized in chunks to bound memory)."""
    parts, pending = [], []
    for s in samples:
        if s.image is None:
            raise PipelineInputError(f"{what}: sample {s.key} has no image (a control-only shard?)")
        pending.append(s)
        if len(pending) == chunk:
            parts.append(resize_batch(samples_to_batch(pending), size))
            pending = []
    if pending:
        parts.append(resize_batch(samples_to_batch(pending), size))
    if not parts:
        raise PipelineInputError(f"{what}: no samples; materialize the asset that writes it")
    return concat(parts)


def load_folder(folder: str | Path, size: int, keys: set[str] | None = None) -> Batch:
    """Every sample of a shard folder (or those whose key is in ``keys``), hash-verified."""
    samples = (s for s in iter_folder(folder) if keys is None or s.key in keys)
    return load_samples(samples, size, str(folder))


def concat(batches: list[Batch]) -> Batch:
    keys = set(batches[0])
    for b in batches[1:]:
        if set(b) != keys:
            raise ValueError(f"cannot join sets with different fields: {sorted(keys ^ set(b))}")
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


def subset(batch: Batch, index: np.ndarray | torch.Tensor) -> Batch:
    idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
    return {k: v[idx] for k, v in batch.items()}


def set_size(batch: Batch) -> int:
    return int(batch["image"].shape[0])
