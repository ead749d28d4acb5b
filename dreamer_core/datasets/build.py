"""Turn pose-bank rows into rendered, labelled samples: reference renders (train / test /
multi-view) and control renders. Every sample's randomness comes from a stream seeded by
(global seed, purpose, split or shard, index), so any sample can be regenerated on its own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
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
from dreamer_core.config import RenderSettings
from dreamer_core.datasets.labels import make_labels
from dreamer_core.datasets.reference_plan import sample_key, view_key
from dreamer_core.datasets.shards import Sample, publish_shard, shard_name
from dreamer_core.io import atomic_path
from dreamer_core.poses.bank import PoseBank
from dreamer_core.render.appearance import list_background_images, sample_appearance
from dreamer_core.render.cameras import BodyTooSmall, Camera, multiview_rig, sample_camera
from dreamer_core.render.renderer import BodyRenderer
from dreamer_core.seeds import stream

Progress = Callable[[str], None]
MAX_CAMERA_TRIES = 10


@dataclass
class BuildReport:
    written: int = 0
    skipped: Counter = field(default_factory=Counter)


def posed(body: BodyModel, bank: PoseBank, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [N, V, 3] and joints [N, J, 3] (world frame) of pose-bank rows."""
    a = bank.arrays
    with torch.no_grad():
        out = body.forward({k: torch.as_tensor(a[k][rows]) for k in ("global_orient", "body_pose", "shape")})
    return out.vertices.numpy(), out.joints.numpy()


def _params(bank: PoseBank, row: int) -> dict[str, np.ndarray]:
    a = bank.arrays
    return {"global_orient": a["global_orient"][row], "body_pose": a["body_pose"][row], "shape": a["shape"][row]}


def _manifest_row(sample: Sample, shard: str, split: str, cam: Camera, extra: dict[str, Any]) -> dict[str, Any]:
    lab = sample.labels
    kp = np.asarray(lab["keypoints_2d"])
    return {
        "key": sample.key, "shard": shard, "split": split, "pose_id": lab["pose_id"], "seed": lab["seed"],
        "body_model": lab["body_model"], "image_size": cam.width, "focal": float(cam.K[0, 0]),
        "cx": float(cam.K[0, 2]), "cy": float(cam.K[1, 2]),
        "bbox_x0": lab["bbox"][0], "bbox_y0": lab["bbox"][1], "bbox_x1": lab["bbox"][2], "bbox_y1": lab["bbox"][3],
        "coco_visible": int((kp[:17, 2] == 2).sum()), "mask_fraction": float((sample.mask >= 128).mean()),
        **extra,
    }  # fmt: skip


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def iter_samples(
    body: BodyModel,
    renderer: BodyRenderer,
    bank: PoseBank,
    rows: np.ndarray,
    settings: RenderSettings,
    seed: int,
    purpose: str,
    key_prefix: str,
    with_image: bool,
    report: BuildReport,
    desc: str,
    first: int = 0,
) -> Iterator[Sample]:
    """One sample per pose row with a freshly sampled camera (and appearance for reference), one
    at a time: a writer publishes each shard as it fills, so a split never sits in memory (at
    512 px a sample is ~2.9 MB decoded). ``rows`` are the planned samples ``first``, ``first`` + 1,
    ...: a sample's key and random stream come from its place in the whole plan, so a partition
    that renders part of it gives the samples one run of the whole plan gives."""
    files = list_background_images(settings.backgrounds_dir) if "images" in settings.backgrounds else None
    cfg = settings.camera_sampling()
    for chunk in tqdm(list(_chunks(len(rows), 64)), desc=desc, leave=False, disable=None):
        verts, joints = posed(body, bank, rows[list(chunk)])
        for j, i in enumerate(chunk):
            rng = stream(seed, purpose, first + i)
            cam = None
            for _ in range(MAX_CAMERA_TRIES):
                try:
                    cam = sample_camera(verts[j], rng, cfg)
                    break
                except BodyTooSmall as exc:
                    report.skipped[f"camera_redrawn_{exc.reason}"] += 1
            if cam is None:
                report.skipped["sample_dropped_no_valid_camera"] += 1
                continue
            app = sample_appearance(rng, settings.backgrounds) if with_image else None
            out = renderer.render(verts[j], cam, settings.supersample, app, files)
            row = int(rows[i])
            sample_seed = int(rng.integers(2**31))
            labels = make_labels(body_model=body.name, params=_params(bank, row), joints_world=joints[j],
                                 camera=cam, depth=out.depth, mask=out.mask, seed=sample_seed,
                                 pose_id=str(bank.arrays["pose_id"][row]))  # fmt: skip
            yield Sample(sample_key(key_prefix, first + i), out.image, out.control, out.mask, labels, out.depth)


def render_samples(*args: Any, **kwargs: Any) -> list[Sample]:
    """``iter_samples`` (same arguments) as a list: for what is small enough to hold, a control
    shard or a test batch."""
    return list(iter_samples(*args, **kwargs))


class ShardWriter:
    """Samples in, shards of ``per_shard`` out: each shard is published (shard, then its index) as
    soon as it fills, so memory holds one shard, never a split. The shards and manifest rows are
    those ``write_samples`` writes from the same samples in one list."""

    def __init__(self, folder: Path, per_shard: int, split: str, first_shard: int = 0) -> None:
        self.folder, self.per_shard, self.split, self.next_shard = folder, per_shard, split, first_shard
        self.rows: list[dict[str, Any]] = []
        self._buffer: list[tuple[Sample, dict[str, Any]]] = []
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, sample: Sample, extra: dict[str, Any] | None = None) -> None:
        self._buffer.append((sample, extra or {}))
        if len(self._buffer) == self.per_shard:
            self._flush()

    def close(self) -> list[dict[str, Any]]:
        """Publish the last, partly filled shard; the manifest rows of every sample written."""
        if self._buffer:
            self._flush()
        return self.rows

    def _flush(self) -> None:
        name = shard_name(self.next_shard)
        publish_shard(self.folder, name, [s for s, _ in self._buffer])
        for s, extra in self._buffer:
            cam = Camera(np.asarray(s.labels["K"]), np.asarray(s.labels["R"]), np.asarray(s.labels["t"]),
                         *s.labels["image_size"])  # fmt: skip
            self.rows.append(_manifest_row(s, f"{self.split}/{name}" if self.split else name, self.split, cam, extra))
        self._buffer.clear()
        self.next_shard += 1


def write_samples(folder: Path, samples: list[Sample], per_shard: int, split: str, first_shard: int = 0,
                  extra_rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Write samples in shards of ``per_shard``; return their manifest rows."""
    writer = ShardWriter(folder, per_shard, split, first_shard)
    for s, extra in zip(samples, extra_rows or [{}] * len(samples), strict=True):
        writer.add(s, extra)
    return writer.close()


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False), tmp, compression="zstd")


def read_manifest(folder: str | Path) -> pd.DataFrame:
    """``manifest.parquet``, or the per-shard ``manifest-*.parquet`` parts of a partitioned asset."""
    folder = Path(folder)
    parts = sorted(folder.glob("manifest*.parquet"))
    if not parts:
        from dreamer_core.errors import PipelineInputError

        raise PipelineInputError(f"{folder}: no manifest.parquet; materialize the asset first")
    return pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)


def iter_multiview(
    body: BodyModel, renderer: BodyRenderer, bank: PoseBank, rows: np.ndarray, heldout: np.ndarray,
    settings: RenderSettings, views_per_ring: int, elevations: tuple[float, ...], radius: float, seed: int,
    report: BuildReport, first: int = 0,
) -> Iterator[tuple[Sample, dict[str, Any]]]:  # fmt: skip
    """K calibrated views of each subject (pose + appearance), for GST's multi-view supervision,
    one view at a time with its manifest extras; subjects are posed 64 at a time, so memory holds
    what the writer's shard holds. ``rows`` are the subjects ``first``, ``first`` + 1, ... (their
    ids, keys and random streams), as in ``iter_samples``."""
    files = list_background_images(settings.backgrounds_dir) if "images" in settings.backgrounds else None
    size = settings.image_size
    bar = tqdm(total=len(rows), desc="multiview subjects", leave=False, disable=None)
    for chunk in _chunks(len(rows), 64):
        verts, joints = posed(body, bank, rows[list(chunk)])
        for j, local in enumerate(chunk):
            row, s_idx = int(rows[local]), first + local
            rng = stream(seed, "multiview", s_idx)
            app = sample_appearance(rng, settings.backgrounds)
            v = verts[j]
            centre = (v.max(0) + v.min(0)) / 2
            extent = float(np.linalg.norm(v.max(0) - v.min(0)))
            focal = size * radius / (extent * (1 + 2 * settings.crop_margin))  # the body fits every view
            for k, cam in enumerate(multiview_rig(views_per_ring, radius, elevations, focal, size, centre)):
                out = renderer.render(v, cam, settings.supersample, app, files)
                extra = {"subject": s_idx, "view": k, "heldout": bool(heldout[local])}
                labels = make_labels(body_model=body.name, params=_params(bank, row), joints_world=joints[j],
                                     camera=cam, depth=out.depth, mask=out.mask, seed=int(app.background_seed),
                                     pose_id=str(bank.arrays["pose_id"][row]), extra=dict(extra))  # fmt: skip
                report.written += 1
                yield Sample(view_key(s_idx, k), out.image, out.control, out.mask, labels, out.depth), extra
            bar.update(1)
    bar.close()


def render_multiview(*args: Any, **kwargs: Any) -> tuple[list[Sample], list[dict[str, Any]]]:
    """``iter_multiview`` (same arguments) as a list of samples and one of their manifest extras."""
    pairs = list(iter_multiview(*args, **kwargs))
    return [s for s, _ in pairs], [e for _, e in pairs]
