"""Multi-view subjects from ``reference_renders/multiview``: every calibrated view of a subject
(image, person mask, K, world -> camera matrix, camera-frame joints) stacked per subject.

A shard holds whole subjects, so a shard is a unit of the training stream whose samples are its
subjects (``subject_stream``; at the ``full`` profile's 2,000 subjects x 36 views at 512 px the
views and masks are ~300 GB as floats). Evaluations load only the held-out subjects."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dreamer_core.datasets.shards import index_keys, read_index, read_labels, read_shard
from dreamer_core.datasets.stream import ShardRef, ShardStream
from dreamer_core.errors import PipelineInputError
from dreamer_core.fingerprint import digest_of

Views = dict[str, torch.Tensor]


@dataclass(frozen=True)
class SubjectDecoder:
    """Decodes a multi-view shard into its subjects: images uint8 [S, V, 3, H, W], masks uint8
    [S, V, 1, H, W], K [S, V, 3, 3], viewmats [S, V, 4, 4], joints_3d [S, V, J, 3], heldout [S] and
    subject [S] (its id). Picklable: DataLoader workers run it."""

    subjects_of: dict[str, tuple[int, ...]]  # shard path -> the subjects of it this decoder keeps
    keys_of: dict[str, tuple[str, ...]]  # shard path -> its sample keys (from the index)

    def __call__(self, ref: ShardRef) -> dict[str, torch.Tensor]:
        keep = set(self.subjects_of[ref.path])
        by_subject: dict[int, list] = defaultdict(list)
        for s in read_shard(ref.path, ref.sha256, list(self.keys_of[ref.path])):
            if s.image is None or s.mask is None:
                raise PipelineInputError(f"{ref.path}: sample {s.key} has no image or mask; re-materialize "
                                         "reference_renders")  # fmt: skip
            if int(s.labels["subject"]) in keep:
                by_subject[int(s.labels["subject"])].append(s)
        return _stack_subjects(ref.path, [sorted(by_subject[k], key=lambda s: int(s.labels["view"]))
                                          for k in self.subjects_of[ref.path]])  # fmt: skip

    def fingerprint(self) -> str:
        return digest_of(sorted((path, list(ids)) for path, ids in self.subjects_of.items()))


def _stack_subjects(where: str, subjects: list[list]) -> dict[str, torch.Tensor]:
    views = {len(v) for v in subjects}
    if len(views) > 1:
        raise PipelineInputError(f"{where}: subjects have different numbers of views {sorted(views)}")
    out: dict[str, list] = defaultdict(list)
    for samples in subjects:
        out["images"].append(np.stack([s.image for s in samples]))
        out["masks"].append(np.stack([s.mask for s in samples]))
        out["K"].append(np.array([s.labels["K"] for s in samples], dtype=np.float32))
        vm = np.tile(np.eye(4, dtype=np.float32), (len(samples), 1, 1))
        vm[:, :3, :3] = [s.labels["R"] for s in samples]
        vm[:, :3, 3] = [s.labels["t"] for s in samples]
        out["viewmats"].append(vm)
        out["joints_3d"].append(np.array([s.labels["joints_3d"] for s in samples], dtype=np.float32))
        out["heldout"].append(bool(samples[0].labels["heldout"]))
        out["subject"].append(int(samples[0].labels["subject"]))
    return {
        "images": torch.from_numpy(np.stack(out["images"])).permute(0, 1, 4, 2, 3).contiguous(),
        "masks": torch.from_numpy(np.stack(out["masks"]))[:, :, None],
        "K": torch.from_numpy(np.stack(out["K"])),
        "viewmats": torch.from_numpy(np.stack(out["viewmats"])),
        "joints_3d": torch.from_numpy(np.stack(out["joints_3d"])),
        "heldout": torch.tensor(out["heldout"]),
        "subject": torch.tensor(out["subject"], dtype=torch.long),
    }


def subject_refs(folder: str | Path, heldout: bool | None = None) -> tuple[list[ShardRef], SubjectDecoder]:
    """The shards of ``folder`` holding subjects (all, or only held-out / only training ones), each a
    ref whose sample count is its number of such subjects, and the decoder that reads them. No
    image is decoded (each shard is read once for its label members and hash); a subject whose
    views span shards is an error, since a unit of the stream must hold whole subjects, and so are
    subjects with different numbers of views."""
    folder = Path(folder)
    index = read_index(folder)
    keys = index_keys(folder, index)
    shard_of: dict[int, str] = {}
    kept: dict[str, list[int]] = {}
    views: dict[int, int] = defaultdict(int)
    for name, entry in index.items():
        for _, labels in read_labels(folder / name, entry["sha256"]):
            subject = int(labels["subject"])
            views[subject] += 1
            if shard_of.setdefault(subject, name) != name:
                raise PipelineInputError(f"{folder}: subject {subject} has views in {shard_of[subject]} and "
                                         f"{name}; a shard must hold whole subjects: re-materialize "
                                         "reference_renders")  # fmt: skip
            if (heldout is None or bool(labels["heldout"]) == heldout) and subject not in kept.setdefault(name, []):
                kept[name].append(subject)
    if not shard_of:
        raise PipelineInputError(f"{folder}: no multi-view samples; materialize reference_renders")
    if len(set(views.values())) != 1:
        raise PipelineInputError(f"{folder}: subjects have different numbers of views {sorted(set(views.values()))}")
    names = [n for n in index if kept.get(n)]
    if not names:
        which = "held-out" if heldout else "training"
        raise PipelineInputError(f"no {which} multi-view subjects; raise reference_renders.multiview_subjects")
    refs = [ShardRef(str(folder / n), len(kept[n]), index[n]["sha256"]) for n in names]
    decoder = SubjectDecoder({str(folder / n): tuple(sorted(kept[n])) for n in names},
                             {str(folder / n): tuple(keys[n]) for n in names})  # fmt: skip
    return refs, decoder


def subject_stream(folder: str | Path, subjects_per_step: int, seed: int, workers: int = 0) -> ShardStream:
    """Endless batches of ``subjects_per_step`` training subjects (every one once per epoch), uint8
    until on the device: what GST trains from instead of every subject's views in memory."""
    refs, decoder = subject_refs(folder, heldout=False)
    return ShardStream(refs, decoder, subjects_per_step, seed=seed, workers=workers)


def as_float(chunk: dict[str, torch.Tensor]) -> Views:
    """Decoded subjects with images and masks as floats in [0, 1] (on the host)."""
    return {k: v.float() / 255.0 if v.dtype == torch.uint8 else v for k, v in chunk.items()}


def load_multiview(folder: str | Path, heldout: bool | None = None, limit: int | None = None) -> Views:
    """Every subject of ``folder`` (or only the held-out / training ones; with ``limit``, those of
    the first shards until ``limit`` subjects, then the first ``limit`` by id), by subject id: images
    [S, V, 3, H, W] and masks [S, V, 1, H, W] in [0, 1], K [S, V, 3, 3], viewmats [S, V, 4, 4],
    joints_3d [S, V, J, 3], heldout [S] (drawn from held-out poses), subject [S]. For the held-out
    subjects an evaluation scores; training streams (``subject_stream``)."""
    refs, decoder = subject_refs(folder, heldout)
    chunks, held = [], 0
    for ref in refs:
        if limit is not None and held >= limit:
            break
        chunks.append(decoder(ref))
        held += ref.num_samples
    order = torch.argsort(torch.cat([c["subject"] for c in chunks]))[:limit]
    return as_float({k: torch.cat([c[k] for c in chunks])[order] for k in chunks[0]})


def mean_person_colour_of(folder: str | Path) -> torch.Tensor:
    """The mean colour [3] inside the person masks of the training subjects, a shard at a time."""
    refs, decoder = subject_refs(folder, heldout=False)
    total, weight = torch.zeros(3, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    for ref in refs:
        v = as_float(decoder(ref))
        total += (v["images"] * v["masks"]).sum((0, 1, 3, 4)).double()
        weight += v["masks"].sum().double()
    return (total / weight.clamp_min(1e-8)).float()


def subjects(views: Views, heldout: bool) -> Views:
    keep = views["heldout"] == heldout
    if not keep.any():
        which = "held-out" if heldout else "training"
        raise PipelineInputError(f"no {which} multi-view subjects; raise reference_renders.multiview_subjects")
    return {k: v[keep] for k, v in views.items()}


def on_background(images: torch.Tensor, masks: torch.Tensor, background: float) -> torch.Tensor:
    """The person over a flat background: what the Gaussians (which model only the person) render."""
    return images * masks + background * (1.0 - masks)
