"""PyTorch views of a shard folder: a map-style ``Dataset`` (random access, for small held-out
sets), an ``IterableDataset`` (streams shards across workers), and ``SampleDecoder`` /
``sample_stream``: the shards of a folder as a ``ShardStream`` of uint8 image batches, which is
what the detector and generator train from (no split is held in memory)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from dreamer_core.datasets.shards import Sample, iter_folder, read_index, read_labels, read_shard
from dreamer_core.datasets.stream import Chunk, ShardRef, ShardStream, shard_refs
from dreamer_core.images import COCO_KEYPOINTS

IMAGE_FIELDS = ("image", "control", "mask")  # stored as PNG; decoded to uint8 [C, H, W]
IMAGE_MEMBER = {"image": "png", "control": "control.png", "mask": "mask.png"}  # each field's shard member
LABEL_FIELDS = ("keypoints", "bbox")  # COCO-17 keypoints [17, 3] and the box [4], as float


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


def _field(s: Sample, name: str) -> torch.Tensor:
    if name in IMAGE_FIELDS:
        value = getattr(s, name)
        if value is None:
            raise ValueError(f"sample {s.key} has no {name} (a control-only shard?)")
        array = np.asarray(value)
        return torch.from_numpy(np.array(array[..., None] if array.ndim == 2 else array)).permute(2, 0, 1)
    if name == "keypoints":
        return torch.tensor(s.labels["keypoints_2d"][:COCO_KEYPOINTS], dtype=torch.float32)
    return torch.tensor(s.labels[name], dtype=torch.float32)


class SampleDecoder:
    """A shard -> ``fields`` of its samples stacked: images (``IMAGE_FIELDS``) as uint8 [N, C, H, W]
    (a quarter of the float bytes between loader and loop), labels (``LABEL_FIELDS``) as float.
    Picklable, so DataLoader workers run it."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        unknown = set(fields) - set(IMAGE_FIELDS) - set(LABEL_FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}: choose from {IMAGE_FIELDS + LABEL_FIELDS}")
        self.fields = tuple(fields)

    def __call__(self, ref: ShardRef) -> Chunk:
        out: dict[str, list[torch.Tensor]] = {f: [] for f in self.fields}
        images = [IMAGE_MEMBER[f] for f in self.fields if f in IMAGE_MEMBER]  # only these are decompressed
        for s in read_shard(ref.path, ref.sha256, images=images):
            for f in self.fields:
                out[f].append(_field(s, f))
        return {f: torch.stack(v) for f, v in out.items()}


def sample_stream(folders: list[str | Path], fields: tuple[str, ...], batch_size: int, seed: int,
                  workers: int = 0, rank: int = 0, world: int = 1) -> ShardStream:  # fmt: skip
    """Endless training batches of ``fields`` from the shards of ``folders`` (see ``ShardStream``:
    each epoch every sample once, each rank its own shards, the same batches for any ``workers``)."""
    return ShardStream(shard_refs(folders), SampleDecoder(fields), batch_size, seed, rank, world, workers)


class ShardSplit:
    """A held-out split read a shard at a time (``fields`` decoded as ``SampleDecoder`` decodes them):
    what evaluation loops over instead of holding the split; only what they keep per sample
    (predictions, labels) grows with it."""

    def __init__(self, folder: str | Path, fields: tuple[str, ...] = ("image", "mask", "keypoints", "bbox")) -> None:
        self.folder = Path(folder)
        self.refs = shard_refs([self.folder])
        self.decode = SampleDecoder(fields)

    def __len__(self) -> int:
        return sum(r.num_samples for r in self.refs)

    def chunks(self) -> Iterator[Chunk]:
        """One decoded shard at a time, in index order (images uint8)."""
        for ref in self.refs:
            yield self.decode(ref)


def label_tensors(folder: str | Path) -> dict[str, torch.Tensor]:
    """COCO-17 keypoints [N, 17, 3] and boxes [N, 4] of every sample of a shard folder, read from the
    label members only (hash-checked, no image decoded): what split statistics need."""
    kps, boxes = [], []
    for name, entry in read_index(folder).items():
        for _key, labels in read_labels(Path(folder) / name, entry["sha256"]):
            kps.append(labels["keypoints_2d"][:COCO_KEYPOINTS])
            boxes.append(labels["bbox"])
    return {"keypoints": torch.tensor(kps, dtype=torch.float32), "bbox": torch.tensor(boxes, dtype=torch.float32)}


def image_side(folder: str | Path) -> int:
    """The image side of a shard folder's samples, from its first sample (one shard read)."""
    for s in iter_folder(folder):
        return int(np.asarray(s.image if s.image is not None else s.control).shape[0])
    raise ValueError(f"{folder}: holds no samples")
