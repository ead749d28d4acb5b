"""DPO candidates as shards: each control's seeded samples are generated, scored and written a
shard of controls at a time, so memory holds one shard's candidates, never the whole set (at the
``full`` profile's 4,096 controls x 4 candidates at 512 px that set is ~13 GB as uint8, ~51 GB as
floats). A candidate is a sample like any other: its image, its control's control image, mask and
labels (exact by construction: it was generated from that control), plus its candidate index and
seed; its OKS goes to the caller (the pair tables), since it is a score, not a label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from dreamer_core.datasets.shards import (
    Sample,
    iter_folder,
    publish_shard,
    read_index,
    read_labels,
    read_shard,
    shard_name,
)
from dreamer_core.dpo.pairs import score_candidates
from dreamer_core.generate.base import ControlGenerator, generate_batched
from dreamer_core.images import COCO_KEYPOINTS, to_uint8

CONTROLS_PER_SHARD = 64  # controls whose candidates share a shard (and are held in memory at once)


def candidate_key(control_key: str, candidate: int) -> str:
    return f"{control_key}-c{candidate}"


def first_controls(folder: str | Path, n: int) -> tuple[list[str], list[str]]:
    """Keys and pose ids of the first ``n`` samples of a shard folder (index order), from the label
    members only: what the pair tables, prompts and seeds are made from before any image is read."""
    keys, pose_ids = [], []
    for name, entry in read_index(folder).items():
        for key, labels in read_labels(Path(folder) / name, entry["sha256"]):
            keys.append(key)
            pose_ids.append(str(labels["pose_id"]))
            if len(keys) == n:
                return keys, pose_ids
    return keys, pose_ids


def control_chunks(folder: str | Path, n: int, size: int = CONTROLS_PER_SHARD) -> Iterator[list[Sample]]:
    """The first ``n`` control samples of a shard folder (index order), ``size`` at a time."""
    samples = islice(iter_folder(folder), n)
    while chunk := list(islice(samples, size)):
        yield chunk


def _chw(images: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(a)).permute(2, 0, 1).float() / 255.0 for a in images])


def write_candidates(gen: ControlGenerator, detector, chunks: Iterator[list[Sample]], keys: list[str],
                     prompts: list[str], seeds: np.ndarray, folder: str | Path, batch_size: int = 32,
                     progress: Callable[[int, int], None] | None = None) -> np.ndarray:  # fmt: skip
    """Generate ``seeds.shape[1]`` candidates of every control in ``chunks`` (which must yield the
    controls named by ``keys``, in order; ``prompts`` and ``seeds`` [C, N] are theirs), score them
    with ``detector`` against the control's label, publish one shard per chunk to ``folder``, and
    return the OKS [C, N]. Sampling and scoring are per sample, so chunking changes no candidate."""
    n_cand, done, rows = seeds.shape[1], 0, []
    total = len(keys) * n_cand
    for i, chunk in enumerate(chunks):
        rows_keys = [s.key for s in chunk]
        if rows_keys != keys[done // n_cand : done // n_cand + len(chunk)]:
            raise ValueError(f"{folder}: the controls read are not the ones the pair tables list (shard {i})")
        c0 = done // n_cand
        controls = _chw([s.control for s in chunk])
        flat = generate_batched(gen, controls.repeat_interleave(n_cand, 0),
                                [p for p in prompts[c0 : c0 + len(chunk)] for _ in range(n_cand)],
                                seeds[c0 : c0 + len(chunk)].reshape(-1).tolist(), batch_size)  # fmt: skip
        images = flat.reshape(len(chunk), n_cand, *flat.shape[1:])
        kps = torch.tensor(np.array([s.labels["keypoints_2d"][:COCO_KEYPOINTS] for s in chunk]), dtype=torch.float32)
        masks = torch.stack([torch.from_numpy(np.array(s.mask)).float()[None] / 255.0 for s in chunk])
        rows.append(score_candidates(detector, images.to(gen.device), kps, masks))
        pixels = to_uint8(images.cpu())
        publish_shard(folder, shard_name(i), [
            Sample(key=candidate_key(s.key, j), image=pixels[c, j], control=s.control, mask=s.mask,
                   labels={**s.labels, "candidate": j, "seed": int(seeds[c0 + c, j])})
            for c, s in enumerate(chunk) for j in range(n_cand)])  # fmt: skip
        done += len(chunk) * n_cand
        if progress:
            progress(done, total)
    if done != total:
        raise ValueError(f"{folder}: {done // n_cand} controls read, {len(keys)} listed")
    return np.concatenate(rows) if rows else np.zeros((0, n_cand), np.float32)


def read_candidates(folder: str | Path, keys: set[str]) -> dict[str, Sample]:
    """The candidates named by ``keys`` (each shard read once, hash-checked; only those kept)."""
    found: dict[str, Sample] = {}
    for name, entry in read_index(folder).items():
        if "keys" in entry and not keys.intersection(entry["keys"]):
            continue  # the index lists this shard's keys: none wanted, so it is not read
        for s in read_shard(Path(folder) / name, entry["sha256"], entry.get("keys")):
            if s.key in keys:
                found[s.key] = s
    if missing := sorted(keys - set(found)):
        raise ValueError(f"{folder}: {len(missing)} candidates the pairs name are not in its shards (e.g. "
                         f"{missing[0]}): re-materialize dpo_pairs")  # fmt: skip
    return found


def candidate_images(found: dict[str, Sample], keys: Sequence[str], field: str = "image") -> torch.Tensor:
    """``field`` of the candidates ``keys`` as floats [K, 3, H, W] in [0, 1]."""
    return _chw([getattr(found[k], field) for k in keys])
