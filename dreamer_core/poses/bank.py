"""Build, write and read the pose bank: diverse poses + shapes, one row per pose.

Same settings and seed give the same bytes (deterministic RNG streams, a stable parquet writer
and a timestamp-free npz), so DVC sees an unchanged output when nothing changed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from dreamer_core.bodies.base import BodyModel
from dreamer_core.bodies.skeleton import BODY_JOINTS, NUM_BODY_JOINTS
from dreamer_core.config import PoseBankSettings
from dreamer_core.errors import PipelineInputError
from dreamer_core.io import atomic_path, load_npz, read_settled, write_json_atomic, write_npz_atomic
from dreamer_core.poses.amass import load_amass_folder
from dreamer_core.poses.anatomical import sample_anatomical
from dreamer_core.poses.diversity import farthest_point_indices, mean_nn_distance
from dreamer_core.poses.splits import SPLITS, assign_splits
from dreamer_core.seeds import stream

POSES_FILE = "poses.parquet"
ARRAYS_FILE = "poses.npz"
SUMMARY_FILE = "summary.json"
Progress = Callable[[str], None]


@dataclass
class PoseBank:
    table: pd.DataFrame
    arrays: dict[str, np.ndarray]
    stats: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.table)

    def not_in_split(self, pose_ids: Any, split: str = "train") -> list[str]:
        """The pose ids (sorted, unique) that are not poses of ``split``: unknown ids included."""
        wanted = set(self.arrays["pose_id"][self.rows(split)].tolist())
        return sorted({str(p) for p in pose_ids} - wanted)

    def ids(self, split: str) -> list[str]:
        """The pose ids of one split, sorted."""
        return sorted(self.arrays["pose_id"][self.rows(split)].tolist())

    def rows(self, split: str) -> np.ndarray:
        """Bank rows of one split (``train`` / ``val`` / ``test``; see ``poses.splits``)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; one of {SPLITS}")
        return np.flatnonzero(self.arrays["split"] == split)


def split_counts(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``total`` by ``weights`` (sums exactly to total)."""
    keys = sorted(k for k, w in weights.items() if w > 0)
    s = sum(weights[k] for k in keys)
    raw = {k: total * weights[k] / s for k in keys}
    counts = {k: math.floor(v) for k, v in raw.items()}
    for k in sorted(keys, key=lambda k: raw[k] - counts[k], reverse=True)[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def root_aligned_joints(body: BodyModel, body_pose: np.ndarray, batch_size: int, desc: str) -> torch.Tensor:
    """Skeleton joints [N, 22, 3] with identity root orientation at the default shape."""
    out = []
    with torch.no_grad():
        for start in tqdm(range(0, len(body_pose), batch_size), desc=desc, leave=False, disable=None):
            bp = torch.as_tensor(body_pose[start : start + batch_size], dtype=torch.float32)
            out.append(body.forward({"body_pose": bp}).skeleton)
    return torch.cat(out) if out else torch.zeros(0, 22, 3)


def build_pose_bank(
    settings: PoseBankSettings, body: BodyModel, seed: int, progress: Progress | None = None
) -> PoseBank:
    """Mix the sources, keep the most diverse candidates of each, attach sampled shapes."""
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    counts, amass = _source_counts(settings, say)
    parts, random_parts = [], []
    for source in ("anatomical", "amass"):
        if counts.get(source, 0):
            part, random_joints = _select(source, counts[source], settings, amass, body, seed, say)
            parts.append(part)
            random_parts.append(random_joints)
    table, arrays = _tables(parts, body, settings, seed)
    joints = torch.cat([p["joints"] for p in parts])
    say("measuring diversity against a uniform random draw of the same size")
    errors = amass.errors if amass is not None else []
    stats = {
        "num_poses": len(table),
        "body_model": body.name,
        "counts_per_source": {p["source"]: len(p["refs"]) for p in parts},
        "counts_per_family": {str(k): int(v) for k, v in table["family"].value_counts().sort_index().items()},
        "counts_per_split": {name: int((arrays["split"] == name).sum()) for name in SPLITS},
        "nn_dist_mm": 1000.0 * mean_nn_distance(joints),
        "nn_dist_random_mm": 1000.0 * mean_nn_distance(torch.cat(random_parts)),
        "candidate_factor": settings.candidate_factor,
        "seconds": time.perf_counter() - t0,
        "skipped_files": len(errors),
    }
    return PoseBank(table=table, arrays=arrays, stats=stats, errors=errors)


def _source_counts(settings: PoseBankSettings, say: Progress) -> tuple[dict[str, int], Any]:
    """Poses per source (AMASS only with a folder, and at most the frames it holds) and the AMASS frames."""
    weights = dict(settings.source_weights)
    amass = None
    if weights.get("amass", 0) > 0:
        if not settings.amass_path:
            say("source_weights.amass > 0 but amass_path is empty: using the anatomical sampler only")
            weights["amass"] = 0.0
        else:
            amass = load_amass_folder(
                settings.amass_path, settings.amass_stride, settings.amass_on_error, settings.amass_zup
            )
            say(f"AMASS: {len(amass.refs)} frames from {settings.amass_path} ({len(amass.errors)} files skipped)")
    if sum(weights.values()) <= 0:
        weights = {"anatomical": 1.0}
    counts = split_counts(settings.num_poses, weights)
    if amass is not None and counts.get("amass", 0) > len(amass.refs):
        short = counts["amass"] - len(amass.refs)
        say(f"AMASS has only {len(amass.refs)} frames; {short} more anatomical poses fill the gap")
        counts["amass"] = len(amass.refs)
        counts["anatomical"] = counts.get("anatomical", 0) + short
    return counts, amass


def _select(source: str, n: int, settings: PoseBankSettings, amass: Any, body: BodyModel, seed: int,
            say: Progress) -> tuple[dict[str, Any], torch.Tensor]:  # fmt: skip
    """``n`` poses of one source, farthest-point selected from ``candidate_factor * n`` candidates,
    and (for the diversity baseline) the joints of ``n`` candidates drawn uniformly."""
    n_cand = max(n, int(math.ceil(settings.candidate_factor * n)))
    if source == "anatomical":
        go, bp, _, fam = sample_anatomical(n_cand, settings.family_weights, settings.noise_deg,
                                           stream(seed, "anatomical"))  # fmt: skip
        refs, families = [f"anatomical:{i}" for i in range(n_cand)], list(fam)
    else:
        idx = np.arange(len(amass.refs))
        if len(idx) > n_cand:
            idx = np.sort(stream(seed, "amass-subset").choice(len(idx), n_cand, replace=False))
        go, bp = amass.global_orient[idx], amass.body_pose[idx]
        refs, families = [amass.refs[i] for i in idx], ["amass"] * len(idx)
    say(f"{source}: {len(bp)} candidates -> {n} poses by farthest-point selection")
    joints = root_aligned_joints(body, bp, settings.batch_size, f"{source} candidates")
    keep = np.sort(farthest_point_indices(joints, n, stream(seed, "fps", source)))
    rand = stream(seed, "random-draw", source).choice(len(bp), n, replace=False)
    part = dict(source=source, global_orient=go[keep], body_pose=bp[keep], joints=joints[keep],
                refs=[refs[i] for i in keep], families=[families[i] for i in keep])  # fmt: skip
    return part, joints[rand]


def _tables(parts: list[dict[str, Any]], body: BodyModel, settings: PoseBankSettings,
            seed: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:  # fmt: skip
    """The bank's table (parquet) and arrays (npz): poses, sampled shapes, pose ids and their split."""
    global_orient = np.concatenate([p["global_orient"] for p in parts]).astype(np.float32)
    body_pose = np.concatenate([p["body_pose"] for p in parts]).astype(np.float32)
    joints = torch.cat([p["joints"] for p in parts])
    n = len(body_pose)
    shape = sample_shapes(body, settings, n, seed)
    pose_ids = np.array([f"pose_{i:06d}" for i in range(n)])
    splits = assign_splits(pose_ids, settings.val_fraction, settings.test_fraction, seed)
    sources = [p["source"] for p in parts for _ in range(len(p["refs"]))]
    table = pd.DataFrame({
        "pose_id": pose_ids, "source": sources, "family": [f for p in parts for f in p["families"]],
        "source_ref": [r for p in parts for r in p["refs"]], "body_model": body.name, "split": splits,
        "global_orient": list(global_orient.astype(np.float64)),
        "body_pose": list(body_pose.reshape(n, -1).astype(np.float64)), "shape": list(shape.astype(np.float64)),
    })  # fmt: skip
    arrays = {"pose_id": pose_ids.astype("U16"), "source": np.array(sources).astype("U16"), "split": splits,
              "global_orient": global_orient, "body_pose": body_pose, "shape": shape.astype(np.float32),
              "joints_root_aligned": joints.numpy().astype(np.float32)}  # fmt: skip
    return table, arrays


def sample_shapes(body: BodyModel, settings: PoseBankSettings, n: int, seed: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(int(stream(seed, "shapes").integers(2**62)))
    if body.name == "anny":
        return body.sample_shapes(n, gen, tuple(settings.age_range)).numpy()  # type: ignore[attr-defined]
    r = settings.betas_range
    return (torch.rand(n, body.num_shape_params, generator=gen) * 2 * r - r).numpy()


def write_pose_bank(bank: PoseBank, out_dir: str | Path) -> dict[str, Path]:
    """Write parquet + npz + summary atomically; stable bytes for identical banks."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(bank.table, preserve_index=False)
    with atomic_path(out / POSES_FILE) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=False)
    write_npz_atomic(out / ARRAYS_FILE, bank.arrays)
    summary = {k: v for k, v in bank.stats.items() if k != "seconds"}
    summary["skipped_file_errors"] = bank.errors
    write_json_atomic(out / SUMMARY_FILE, summary)
    return {"poses": out / POSES_FILE, "arrays": out / ARRAYS_FILE, "summary": out / SUMMARY_FILE}


def read_pose_bank(out_dir: str | Path) -> PoseBank:
    """The bank's table and arrays, both from one published version (``publish_folder`` may swap
    a new bank in while they are read)."""
    return read_settled(out_dir, lambda: _read_pose_bank(Path(out_dir)))


def _read_pose_bank(out: Path) -> PoseBank:
    for name in (POSES_FILE, ARRAYS_FILE):
        if not (out / name).is_file():
            raise PipelineInputError(f"{out / name}: missing; materialize the pose_bank asset first")
    table = pq.read_table(out / POSES_FILE).to_pandas()
    arrays = load_npz(out / ARRAYS_FILE)
    if arrays["body_pose"].shape[1:] != (NUM_BODY_JOINTS, 3) or len(table) != len(arrays["body_pose"]):
        raise PipelineInputError(f"{out}: poses.parquet and poses.npz disagree; rebuild the pose bank")
    if "split" not in arrays or not set(np.unique(arrays["split"])) <= set(SPLITS):
        raise PipelineInputError(f"{out}: no train/val/test split per pose (an older bank); rebuild the pose bank")
    return PoseBank(table=table, arrays=arrays)


__all__ = ["BODY_JOINTS", "PoseBank", "build_pose_bank", "read_pose_bank", "write_pose_bank"]
