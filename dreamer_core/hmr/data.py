"""HMR training and test sets from shard folders: images resized to the model's input side, with
the intrinsics and 2D keypoints rescaled to match, so every label still reproduces its pixels.

Training streams (``training_stream``: shards decoded by loader workers, uint8 images, see
``dreamer_core.datasets.stream``) and its mean parameters come from the labels alone
(``training_mean``), so a training set of any size costs a few shards of memory. Rendered test
splits are scored a shard at a time (``FolderSplit``); small sets (generated, real) load whole
(``load_folder``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dreamer_core.bodies.rotations import axis_angle_to_matrix
from dreamer_core.datasets.shards import Sample, iter_folder, read_labels, read_shard
from dreamer_core.datasets.stream import ShardRef, ShardStream, memory_refs, shard_refs, slice_chunk
from dreamer_core.errors import PipelineInputError
from dreamer_core.fingerprint import tensor_digest
from dreamer_core.hmr.camera import translation_to_weak_perspective
from dreamer_core.hmr.model import HMR

Batch = dict[str, torch.Tensor]


def samples_to_batch(samples: list[Sample]) -> dict[str, torch.Tensor]:
    """Images and the labels HMR trains on, stacked."""

    def f32(values: list[Any]) -> torch.Tensor:
        return torch.tensor(np.array(values, dtype=np.float32))

    lab = [s.labels for s in samples]
    return {
        "image": torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float() / 255.0,
        "K": f32([x["K"] for x in lab]),
        "joints_3d": f32([x["joints_3d"] for x in lab]),
        "keypoints_2d": f32([x["keypoints_2d"] for x in lab]),
        "global_orient_cam": f32([x["global_orient_cam"] for x in lab]),
        "transl_cam": f32([x["transl_cam"] for x in lab]),
        "body_pose": f32([x["params"]["body_pose"] for x in lab]),
        "shape": f32([x["params"]["shape"] for x in lab]),
    }


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


class FolderSplit:
    """A test split read a shard at a time (each shard hash-verified, resized to ``size``): what
    scoring loops over instead of the whole split in memory (a ``full`` test split of 5k renders is
    ~4 GB as floats at 256 px). Its labels come from the label members alone (``labels``)."""

    def __init__(self, folder: str | Path, size: int) -> None:
        self.folder, self.size = Path(folder), size
        self.refs = shard_refs([self.folder])
        if not sum(r.num_samples for r in self.refs):
            raise PipelineInputError(f"{self.folder}: no samples; materialize the asset that writes it")

    def __len__(self) -> int:
        return sum(r.num_samples for r in self.refs)

    def chunks(self) -> Iterable[Batch]:
        """One shard's samples at a time, in index order, as ``load_folder`` gives them."""
        for ref in self.refs:
            yield load_samples(read_shard(ref.path, ref.sha256), self.size, ref.path)

    def labels(self, fields: tuple[str, ...] = ("joints_3d", "global_orient_cam")) -> Batch:
        return folder_labels(self.folder, fields)


EvalSet = Batch | FolderSplit


def set_chunks(data: EvalSet) -> Iterable[Batch]:
    """A test set's samples as batches: a loaded set whole, a ``FolderSplit`` a shard at a time."""
    return data.chunks() if isinstance(data, FolderSplit) else [data]


def set_size(data: EvalSet) -> int:
    return len(data) if isinstance(data, FolderSplit) else int(data["image"].shape[0])


def set_labels(data: EvalSet) -> Batch:
    """The label fields set statistics need (joints_3d, global_orient_cam), without images."""
    return data.labels() if isinstance(data, FolderSplit) else data


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8 (rounded): a quarter of the bytes between loader and loop."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


class HMRDecoder:
    """A stream unit -> the HMR fields of its samples: images resized to ``size`` as uint8, labels
    as float. In-memory sets (``memory``: name -> batch, e.g. a real dataset's frames) are cut by
    rows; shards are read hash-verified and resized ``chunk`` samples at a time."""

    def __init__(self, size: int, memory: dict[str, Batch] | None = None, chunk: int = 64) -> None:
        self.size, self.chunk = size, chunk
        self.memory = {k: {**v, "image": quantise(v["image"])} for k, v in (memory or {}).items()}

    def fingerprint(self) -> str:
        """The in-memory sets by content (shards are keyed by their hashes in the refs)."""
        return tensor_digest({name: tensor_digest(batch) for name, batch in sorted(self.memory.items())})

    def __call__(self, ref: ShardRef) -> Batch:
        if ref.path in self.memory:  # a copy: a view would ship its whole set to the loader process
            rows = slice_chunk(self.memory[ref.path], ref.start, ref.start + ref.num_samples)
            return {k: v.clone() for k, v in rows.items()}
        parts, pending = [], []
        for sample in read_shard(ref.path, ref.sha256):
            if sample.image is None:
                raise PipelineInputError(f"{ref.path}: sample {sample.key} has no image (a control-only shard?)")
            pending.append(sample)
            if len(pending) == self.chunk:
                parts.append(self._resized(pending))
                pending = []
        if pending:
            parts.append(self._resized(pending))
        return concat(parts)

    def _resized(self, samples: list[Sample]) -> Batch:
        batch = resize_batch(samples_to_batch(samples), self.size)
        return {**batch, "image": quantise(batch["image"])}


def as_float(batch: Batch, device: torch.device | str = "cpu") -> Batch:
    """A streamed batch on ``device`` with its uint8 images as floats in [0, 1]."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    out["image"] = out["image"].float() / 255.0
    return out


def training_stream(folders: list[str], memory: dict[str, Batch], size: int, batch_size: int, seed: int,
                    rank: int = 0, world: int = 1, workers: int = 0) -> ShardStream:  # fmt: skip
    """Batches from shard folders and in-memory sets together (each rank its own shards)."""
    refs = shard_refs(folders) + [r for name, b in memory.items() for r in memory_refs(name, set_size(b))]
    return ShardStream(refs, HMRDecoder(size, memory), batch_size, seed, rank, world, workers)


class ParameterMean:
    """Running sums of what ``HMR.set_mean`` averages: joint rotation matrices, shape, camera."""

    def __init__(self) -> None:
        self.count, self.rot, self.shape, self.cam = 0, 0.0, 0.0, 0.0

    def add(self, global_orient: torch.Tensor, body_pose: torch.Tensor, shape: torch.Tensor,
            transl: torch.Tensor, focal: torch.Tensor, side: torch.Tensor | float) -> None:  # fmt: skip
        aa = torch.cat([global_orient[:, None], body_pose], dim=1).double()
        self.rot = self.rot + axis_angle_to_matrix(aa).sum(0)
        self.shape = self.shape + shape.double().sum(0)
        cam = translation_to_weak_perspective(transl.double(), focal.double(), 1.0)  # s at a 1 px side
        cam[:, 0] = cam[:, 0] / torch.as_tensor(side, dtype=torch.float64)  # the image's own side
        self.cam = self.cam + cam.sum(0)
        self.count += len(shape)

    def all_reduce(self) -> ParameterMean:
        """The sums over every rank of a process group (each rank summed its own shards)."""
        import torch.distributed as dist

        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        parts = [torch.as_tensor(x, dtype=torch.float64).reshape(-1) for x in (self.rot, self.shape, self.cam)]
        flat = torch.cat([torch.tensor([float(self.count)], dtype=torch.float64), *parts]).to(device)
        dist.all_reduce(flat)
        flat = flat.cpu()
        sizes = [p.numel() for p in parts]
        self.count = int(flat[0])
        rot, shape, cam = torch.split(flat[1:], sizes)
        self.rot, self.shape, self.cam = rot.reshape(-1, 3, 3), shape, cam
        return self

    def apply(self, model: HMR) -> None:
        if not self.count:
            raise PipelineInputError("no training samples to take the mean parameters from")
        n = self.count
        model.set_mean_values(self.rot / n, (self.shape / n).float(), (self.cam / n).float())


def training_mean_of(batch: Batch) -> ParameterMean:
    """The mean parameters of a set held in memory (images already at the model's side)."""
    mean = ParameterMean()
    mean.add(batch["global_orient_cam"], batch["body_pose"], batch["shape"], batch["transl_cam"],
             batch["K"][:, 0, 0], float(batch["image"].shape[-1]))  # fmt: skip
    return mean


def memory_stream(batch: Batch, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> ShardStream:
    """A set held in memory, streamed like shards (tests, small real sets)."""
    decoder = HMRDecoder(int(batch["image"].shape[-1]), {"memory": batch})
    return ShardStream(memory_refs("memory", set_size(batch)), decoder, batch_size, seed, rank, world)


def training_mean(stream: ShardStream, memory: dict[str, Batch], rank: int = 0, world: int = 1) -> ParameterMean:
    """The sums behind the mean parameters of every sample the stream holds, from labels only (no
    image decoded); with ``world`` > 1 this rank sums every world-th shard (combine the ranks with
    ``ParameterMean.all_reduce``), so no rank reads every shard."""
    mean = ParameterMean()
    for ref in stream.refs[rank::world]:
        if ref.path in memory:
            b = slice_chunk(memory[ref.path], ref.start, ref.start + ref.num_samples)
            mean.add(b["global_orient_cam"], b["body_pose"], b["shape"], b["transl_cam"], b["K"][:, 0, 0],
                     float(b["image"].shape[-1]))  # fmt: skip
            continue
        labels = [lab for _, lab in read_labels(ref.path, ref.sha256)]

        def f32(values: list) -> torch.Tensor:
            return torch.tensor(np.array(values, dtype=np.float32))

        mean.add(f32([x["global_orient_cam"] for x in labels]), f32([x["params"]["body_pose"] for x in labels]),
                 f32([x["params"]["shape"] for x in labels]), f32([x["transl_cam"] for x in labels]),
                 f32([x["K"][0][0] for x in labels]), f32([x["image_size"][0] for x in labels]))  # fmt: skip
    return mean


def folder_labels(folder: str | Path, fields: tuple[str, ...] = ("joints_3d", "global_orient_cam")) -> Batch:
    """Top-level label fields of every sample of a shard folder as float tensors, without decoding
    an image: set statistics (sizes, pose spread) cost the JSON members only."""
    values: dict[str, list[Any]] = {f: [] for f in fields}
    for ref in shard_refs([folder]):
        for _, labels in read_labels(ref.path, ref.sha256):
            for f in fields:
                values[f].append(labels[f])
    if not values[fields[0]]:
        raise PipelineInputError(f"{folder}: no samples; materialize the asset that writes it")
    return {f: torch.tensor(np.array(v, dtype=np.float32)) for f, v in values.items()}
