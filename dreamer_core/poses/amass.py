"""AMASS-style ``.npz`` pose folders (SMPL / SMPL-H / SMPL-X parameters), validated.

AMASS ships either ``poses`` [T, 72|156|165] (root orient, then body joints) or the split
``root_orient`` [T, 3] + ``pose_body`` [T, 63]. Its world is Z up; we rotate roots into SMPL's
Y-up frame. Files are read with ``allow_pickle=False``; a bad file is reported by name and key.
"""

from __future__ import annotations

import logging
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dreamer_core.bodies.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from dreamer_core.bodies.skeleton import NUM_BODY_JOINTS
from dreamer_core.errors import PoseFileError

log = logging.getLogger(__name__)
_ZUP_TO_YUP = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
_POSES_WIDTHS = (72, 156, 165)  # SMPL, SMPL-H, SMPL-X (with jaw/eyes)
MAX_ANGLE = 2 * math.pi


@dataclass
class AmassPoses:
    global_orient: np.ndarray  # [N, 3]
    body_pose: np.ndarray  # [N, 21, 3]
    refs: list[str]  # "file.npz:frame"
    errors: list[str] = field(default_factory=list)


def read_amass_file(path: Path, stride: int, zup: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return (global_orient [T', 3], body_pose [T', 21, 3]) of every ``stride``-th frame."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as exc:
        raise PoseFileError(f"{path}: not a plain-array .npz ({exc}); re-save it without object arrays") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise PoseFileError(f"{path}: unreadable .npz ({exc})") from exc
    if "root_orient" in arrays and "pose_body" in arrays:
        root, body = arrays["root_orient"], arrays["pose_body"]
        for key, arr, width in (("root_orient", root, 3), ("pose_body", body, 3 * NUM_BODY_JOINTS)):
            if arr.ndim != 2 or arr.shape[1] != width:
                raise PoseFileError(f"{path}: key {key!r} has shape {arr.shape}, expected [frames, {width}]")
        if root.shape[0] != body.shape[0]:
            raise PoseFileError(f"{path}: 'root_orient' has {root.shape[0]} frames, 'pose_body' {body.shape[0]}")
    elif "poses" in arrays:
        poses = arrays["poses"]
        if poses.ndim != 2 or poses.shape[1] not in _POSES_WIDTHS:
            raise PoseFileError(
                f"{path}: key 'poses' has shape {poses.shape}, expected [frames, one of {_POSES_WIDTHS}]"
            )
        root, body = poses[:, :3], poses[:, 3 : 3 + 3 * NUM_BODY_JOINTS]
    else:
        raise PoseFileError(
            f"{path}: no pose arrays; expected key 'poses' or keys 'root_orient' + 'pose_body' (found {sorted(arrays)})"
        )
    for key, arr in (("root orientation", root), ("body pose", body)):
        if not np.issubdtype(arr.dtype, np.floating):
            raise PoseFileError(f"{path}: {key} has dtype {arr.dtype}, expected floating point")
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
            raise PoseFileError(f"{path}: {key} contains NaN or inf (first at frame {bad})")
        if np.abs(arr).max(initial=0.0) > MAX_ANGLE:
            raise PoseFileError(
                f"{path}: {key} has values up to {np.abs(arr).max():.3g} rad, outside +/-2pi: not axis-angle radians?"
            )
    if root.shape[0] == 0:
        raise PoseFileError(f"{path}: holds no frames")
    root = torch.as_tensor(root[::stride], dtype=torch.float64)
    body = torch.as_tensor(body[::stride], dtype=torch.float64).reshape(-1, NUM_BODY_JOINTS, 3)
    # Re-express as angle in [0, pi] so values sit in the body model's parameter bounds.
    body = matrix_to_axis_angle(axis_angle_to_matrix(body))
    rot = axis_angle_to_matrix(root)
    if zup:
        rot = _ZUP_TO_YUP @ rot
    return matrix_to_axis_angle(rot).numpy(), body.numpy()


def load_amass_folder(folder: str | Path, stride: int, on_error: str, zup: bool = True) -> AmassPoses:
    """All frames (every ``stride``-th) of every ``*.npz`` under ``folder``, sorted by path.

    ``on_error="skip"`` logs and records a bad file and goes on; ``"fail"`` raises its error.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise PoseFileError(f"pose_bank.amass_path: {root} is not a folder; point it at a folder of AMASS .npz files")
    files = sorted(p for p in root.rglob("*.npz") if p.is_file())
    if not files:
        raise PoseFileError(f"pose_bank.amass_path: no .npz files under {root}; point it at a folder of AMASS files")
    orients, bodies, refs, errors = [], [], [], []
    for path in files:
        try:
            go, bp = read_amass_file(path, stride, zup)
        except PoseFileError as exc:
            if on_error == "fail":
                raise PoseFileError(
                    f"{exc}; fix or remove this file, or set pose_bank.amass_on_error: skip to leave bad files out"
                ) from exc
            log.warning("skipping %s", exc)
            errors.append(str(exc))
            continue
        rel = path.relative_to(root).as_posix()
        orients.append(go)
        bodies.append(bp)
        refs.extend(f"{rel}:{i * stride}" for i in range(len(go)))
    if not orients:
        return AmassPoses(np.zeros((0, 3)), np.zeros((0, NUM_BODY_JOINTS, 3)), [], errors)
    return AmassPoses(np.concatenate(orients), np.concatenate(bodies), refs, errors)
