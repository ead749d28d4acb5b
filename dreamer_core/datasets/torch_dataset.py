"""PyTorch views of a shard folder: a map-style ``Dataset`` (random access, for training on a
few thousand samples) and an ``IterableDataset`` (streams shards, splits them across workers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from dreamer_core.datasets.shards import Sample, iter_folder, read_index, read_shard
from dreamer_core.images import COCO_KEYPOINTS


def sample_to_tensors(s: Sample) -> dict[str, Any]:
    lab = s.labels
    out: dict[str, Any] = {
        "key": s.key,
        "control": torch.from_numpy(np.array(s.control)).permute(2, 0, 1).float() / 255.0,
        "mask": torch.from_numpy(np.array(s.mask)).float()[None] / 255.0,
        "keypoints_2d": torch.tensor(lab["keypoints_2d"], dtype=torch.float32),
        "joints_3d": torch.tensor(lab["joints_3d"], dtype=torch.float32),
        "K": torch.tensor(lab["K"], dtype=torch.float32),
        "R": torch.tensor(lab["R"], dtype=torch.float32),
        "t": torch.tensor(lab["t"], dtype=torch.float32),
        "bbox": torch.tensor(lab["bbox"], dtype=torch.float32),
        "pose_id": lab["pose_id"],
    }
    for name, value in lab["params"].items():
        out[f"param_{name}"] = torch.tensor(value, dtype=torch.float32)
    if s.image is not None:  # control-only shards (control_renders) carry no image
        out["image"] = torch.from_numpy(np.array(s.image)).permute(2, 0, 1).float() / 255.0
    if s.depth is not None:
        out["depth"] = torch.from_numpy(s.depth)[None]
    return out


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors, keep strings as lists (what a DataLoader needs for these dicts)."""
    out: dict[str, Any] = {}
    for k in batch[0]:
        vals = [b[k] for b in batch]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


class ShardDataset(Dataset):
    """All samples of a shard folder held decoded in memory (fine for tiny/medium sets)."""

    def __init__(self, folder: str | Path, verify: bool = True) -> None:
        self.samples = list(iter_folder(folder, verify))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return sample_to_tensors(self.samples[i])


class ShardIterableDataset(IterableDataset):
    """Streams shards; each DataLoader worker reads a disjoint subset of them."""

    def __init__(self, folder: str | Path, verify: bool = True) -> None:
        self.folder = Path(folder)
        self.index = read_index(self.folder)
        self.verify = verify

    def __iter__(self):
        info = get_worker_info()
        names = list(self.index)
        if info is not None:
            names = names[info.id :: info.num_workers]
        for name in names:
            sha = self.index[name]["sha256"] if self.verify else None
            for s in read_shard(self.folder / name, sha):
                yield sample_to_tensors(s)


def stack_samples(folder: str | Path, keys: tuple[str, ...], limit: int | None = None) -> dict[str, Any]:
    """The first ``limit`` samples of a shard folder (shard order) as stacked tensors per key;
    string fields ("key", "pose_id") as lists. Keypoints are cut to COCO-17 ("keypoints")."""
    out: dict[str, list[Any]] = {k: [] for k in keys}
    for s in iter_folder(folder):
        if limit is not None and len(out[keys[0]]) >= limit:
            break
        t = sample_to_tensors(s)
        t["keypoints"] = t["keypoints_2d"][:COCO_KEYPOINTS]
        for k in keys:
            out[k].append(t[k])
    return {k: torch.stack(v) if v and isinstance(v[0], torch.Tensor) else v for k, v in out.items()}
