"""Real benchmarks for HMR: 3DPW and EMDB, read from the folders their sites distribute.

Both label people with SMPL parameters in a world frame plus per-frame camera extrinsics, so a
frame becomes a test sample: the person's square crop (resized to the model's input), the crop's
intrinsics, the root orientation in the camera frame, the 21 body-joint rotations and the betas.
Ground-truth meshes are then produced by the configured SMPL body model, exactly as for our own
renders (root-aligned metrics do not need the translation). The label files are pickles; they are
read with an unpickler that accepts numpy arrays only (``safe_pickle``).

Layouts:
- 3DPW: ``<root>/sequenceFiles/<split>/<sequence>.pkl`` and ``<root>/imageFiles/<sequence>/image_%05d.jpg``.
- EMDB: ``<root>/P<k>/<sequence>/P<k>_<sequence>_data.pkl`` and ``.../images/%05d.jpg``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from dreamer_core.bodies.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from dreamer_core.datasets.safe_pickle import load_label_pickle
from dreamer_core.errors import PipelineInputError


@dataclass(frozen=True)
class Frame:
    image: Path
    K: np.ndarray  # [3, 3] full-frame intrinsics
    R: np.ndarray  # [3, 3] world -> camera rotation
    root: np.ndarray  # [3] world-frame root orientation (axis-angle)
    body_pose: np.ndarray  # [21, 3]
    betas: np.ndarray  # [B]
    trans: np.ndarray  # [3] world-frame translation of the body model
    t: np.ndarray  # [3] world -> camera translation
    points_2d: np.ndarray  # [J, 2] full-frame points that bound the person (for the crop)
    gender: str


def _array(value: Any, shape: tuple[int | None, ...], what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)):
        raise PipelineInputError(f"{what}: expected shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise PipelineInputError(f"{what}: holds NaN or infinite values")
    return arr


def _project(K: np.ndarray, R: np.ndarray, t: np.ndarray, points: np.ndarray) -> np.ndarray:
    cam = points @ R.T + t
    uv = cam @ K.T
    return uv[:, :2] / np.clip(uv[:, 2:], 1e-6, None)


def frames_3dpw(root: str | Path, split: str = "test") -> list[Frame]:
    """Every (person, frame) with a valid camera pose in a 3DPW split."""
    root = Path(root)
    seq_dir = root / "sequenceFiles" / split
    files = sorted(seq_dir.glob("*.pkl"))
    if not files:
        raise PipelineInputError(f"{seq_dir}: no 3DPW sequence files (*.pkl); point the path at the 3DPW root")
    frames = []
    for f in files:
        d = load_label_pickle(f)
        try:
            name, K = d["sequence"], _array(d["cam_intrinsics"], (3, 3), f"{f} cam_intrinsics")
            cam_poses = _array(d["cam_poses"], (None, 4, 4), f"{f} cam_poses")
            frame_ids = np.asarray(d["img_frame_ids"], dtype=np.int64)
            actors = range(len(d["poses"]))
            for a in actors:
                poses = _array(d["poses"][a], (len(cam_poses), 72), f"{f} poses[{a}]")
                joints = _array(d["jointPositions"][a], (len(cam_poses), 72), f"{f} jointPositions[{a}]")
                betas = _array(d["betas"][a], (None,), f"{f} betas[{a}]")
                trans = _array(d["trans"][a], (len(cam_poses), 3), f"{f} trans[{a}]")
                valid = np.asarray(d["campose_valid"][a], dtype=bool)
                gender = {"m": "male", "f": "female"}.get(str(d["genders"][a]), "neutral")
                for i in np.flatnonzero(valid):
                    R, t = cam_poses[i, :3, :3], cam_poses[i, :3, 3]
                    frames.append(Frame(
                        root / "imageFiles" / name / f"image_{frame_ids[i]:05d}.jpg", K, R, poses[i, :3],
                        poses[i, 3:66].reshape(21, 3), betas, trans[i], t, _project(K, R, t, joints[i].reshape(24, 3)),
                        gender,
                    ))  # fmt: skip
        except KeyError as exc:
            raise PipelineInputError(f"{f}: not a 3DPW sequence file (missing {exc})") from exc
    return frames


def frames_emdb(root: str | Path, subset: str = "emdb1") -> list[Frame]:
    """Every good frame of the EMDB sequences flagged ``subset`` (emdb1: the HMR benchmark)."""
    root = Path(root)
    files = sorted(root.glob("P*/*/*_data.pkl"))
    if not files:
        raise PipelineInputError(f"{root}: no EMDB label files (P*/<sequence>/*_data.pkl); point the path at EMDB")
    frames = []
    for f in files:
        d = load_label_pickle(f)
        try:
            if not d.get(subset, False):
                continue
            smpl, cam = d["smpl"], d["camera"]
            n = int(d["n_frames"])
            roots = _array(smpl["poses_root"], (n, 3), f"{f} poses_root")
            body = _array(smpl["poses_body"], (n, 69), f"{f} poses_body")
            betas = _array(smpl["betas"], (None,), f"{f} betas")
            trans = _array(smpl["trans"], (n, 3), f"{f} trans")
            K = _array(cam["intrinsics"], (3, 3), f"{f} intrinsics")
            ext = _array(cam["extrinsics"], (n, 4, 4), f"{f} extrinsics")
            kp2d = _array(d["kp2d"], (n, None, 2), f"{f} kp2d")
            good = np.asarray(d["good_frames_mask"], dtype=bool)
            gender = str(d.get("gender", "neutral"))
            for i in np.flatnonzero(good):
                frames.append(Frame(f.parent / "images" / f"{i:05d}.jpg", K, ext[i, :3, :3], roots[i],
                                    body[i, :63].reshape(21, 3), betas, trans[i], ext[i, :3, 3], kp2d[i],
                                    gender))  # fmt: skip
        except KeyError as exc:
            raise PipelineInputError(f"{f}: not an EMDB label file (missing {exc})") from exc
    return frames


def _f32(values: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(values).astype(np.float32))


def crop_box(points: np.ndarray, margin: float = 1.25) -> tuple[int, int, int]:
    """(x0, y0, side) of the square around ``points`` enlarged by ``margin`` (integer pixels)."""
    lo, hi = points.min(0), points.max(0)
    side = max(8, math.ceil(float((hi - lo).max()) * margin))
    centre = (lo + hi) / 2
    return math.floor(centre[0] - side / 2), math.floor(centre[1] - side / 2), side


def frames_to_batch(frames: list[Frame], size: int, num_shape: int) -> dict[str, torch.Tensor]:
    """Crops, their intrinsics and the camera-frame parameters, as the HMR evaluation takes them."""
    images, Ks, orients, poses, shapes = [], [], [], [], []
    for fr in frames:
        try:
            with Image.open(fr.image) as im:
                im = im.convert("RGB")
                x0, y0, side = crop_box(fr.points_2d)
                crop = im.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BILINEAR)
        except FileNotFoundError as exc:
            raise PipelineInputError(f"{fr.image}: image missing; the label file lists it") from exc
        except (UnidentifiedImageError, OSError) as exc:
            raise PipelineInputError(f"{fr.image}: unreadable or truncated image ({exc})") from exc
        s = size / side
        K = fr.K.copy()
        K[0, :] *= s
        K[1, :] *= s
        K[0, 2] -= x0 * s
        K[1, 2] -= y0 * s
        images.append(np.asarray(crop))
        Ks.append(K)
        rot = fr.R @ axis_angle_to_matrix(torch.from_numpy(fr.root)).numpy()
        orients.append(matrix_to_axis_angle(torch.from_numpy(rot)).numpy())
        poses.append(fr.body_pose)
        betas = np.zeros(num_shape)
        betas[: min(num_shape, len(fr.betas))] = fr.betas[:num_shape]
        shapes.append(betas)

    return {"image": torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0, "K": _f32(Ks),
            "global_orient_cam": _f32(orients), "body_pose": _f32(poses), "shape": _f32(shapes)}  # fmt: skip


def evenly(frames: list[Frame], limit: int) -> list[Frame]:
    """At most ``limit`` frames spread over the whole list (every sequence contributes)."""
    if len(frames) <= limit:
        return frames
    return [frames[i] for i in np.linspace(0, len(frames) - 1, limit).round().astype(int)]


def frames_to_training_batch(frames: list[Frame], size: int, body: Any) -> dict[str, torch.Tensor]:
    """A test batch plus what HMR training needs, in the same conventions as our renders: 3D joints
    in the camera frame (the body model posed with the frame's world parameters, then the camera
    extrinsics), their projections into the crop as 2D keypoints (visible when inside it), and the
    camera-frame translation such that joints = body(camera-frame parameters) + translation."""
    batch = frames_to_batch(frames, size, body.num_shape_params)

    with torch.no_grad():
        params = {"global_orient": _f32([f.root for f in frames]), "body_pose": batch["body_pose"],
                  "shape": batch["shape"], "transl": _f32([f.trans for f in frames])}  # fmt: skip
        world = body.forward(params, validate=False)
        R, t = _f32([f.R for f in frames]), _f32([f.t for f in frames])
        cam = world.joints @ R.transpose(1, 2) + t[:, None]
        local = body.forward({k: batch[k] for k in ("body_pose", "shape")} |
                             {"global_orient": batch["global_orient_cam"]}, validate=False).joints  # fmt: skip
    uvw = cam @ batch["K"].transpose(1, 2)
    uv = uvw[..., :2] / uvw[..., 2:].clamp_min(1e-6)
    inside = ((uv >= 0) & (uv < size)).all(-1) & (cam[..., 2] > 0)
    return {**batch, "joints_3d": cam, "transl_cam": (cam - local).mean(1),
            "keypoints_2d": torch.cat([uv, 2.0 * inside[..., None].float()], -1)}  # fmt: skip


TRAIN_READERS = {"3dpw": lambda root: frames_3dpw(root, "train")}


def parse_real_source(source: str) -> tuple[str, Path] | None:
    """``"3dpw:<root>"`` -> ("3dpw", root); a plain folder (our shards) -> None."""
    kind, sep, path = source.partition(":")
    if sep and kind in TRAIN_READERS:
        if not path or not Path(path).is_dir():
            raise PipelineInputError(f"training source {source!r}: {path or '(empty)'} is not a folder; give the "
                                     f"dataset root, e.g. {kind}:/data/{kind.upper()}")  # fmt: skip
        return kind, Path(path)
    return None
