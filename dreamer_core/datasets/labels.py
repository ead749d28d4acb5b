"""Per-sample labels, exact by construction: everything derives from the same posed mesh and
camera that produced the pixels. Convention: OpenCV camera, pixels, metres."""

from __future__ import annotations

from typing import Any

import numpy as np

from dreamer_core.bodies.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from dreamer_core.render.cameras import Camera

OCCLUSION_MARGIN_M = 0.15  # a joint this far behind the visible surface is occluded by another part


def keypoints_2d(joints_world: np.ndarray, camera: Camera, depth: np.ndarray) -> np.ndarray:
    """[J, 3] (u, v, visibility): 2 visible, 1 in the image but occluded, 0 outside the image."""
    uv, z = camera.project(joints_world)
    h, w = depth.shape
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h) & (z > 0)
    vis = np.zeros(len(uv))
    cols = np.clip(uv[:, 0].astype(int), 0, w - 1)
    rows = np.clip(uv[:, 1].astype(int), 0, h - 1)
    surface = depth[rows, cols]
    occluded = (surface > 0) & (z - surface > OCCLUSION_MARGIN_M)
    vis[inside] = np.where(occluded[inside], 1.0, 2.0)
    return np.concatenate([uv, vis[:, None]], axis=1)


def bbox_from_mask(mask: np.ndarray, threshold: int = 128) -> list[float]:
    """[x0, y0, x1, y1] in pixels (x1, y1 exclusive) of the mask; zeros when empty."""
    ys, xs = np.nonzero(mask >= threshold)
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def make_labels(
    *,
    body_model: str,
    params: dict[str, np.ndarray],
    joints_world: np.ndarray,
    camera: Camera,
    depth: np.ndarray,
    mask: np.ndarray,
    seed: int,
    pose_id: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    go_world = axis_angle_to_matrix(np_t(params["global_orient"]))
    go_cam = matrix_to_axis_angle(np_t(camera.R) @ go_world).numpy()
    labels = {
        "body_model": body_model,
        "params": {k: np.asarray(v, dtype=float).tolist() for k, v in params.items()},
        # The same body in the camera frame: rotate the root, and the pelvis (world origin) moves to t.
        "global_orient_cam": go_cam.tolist(),
        "transl_cam": (camera.R @ np.asarray(params.get("transl", np.zeros(3))) + camera.t).tolist(),
        "joints_3d": camera.to_camera(joints_world).tolist(),
        "keypoints_2d": keypoints_2d(joints_world, camera, depth).tolist(),
        "bbox": bbox_from_mask(mask),
        "K": camera.K.tolist(),
        "R": camera.R.tolist(),
        "t": camera.t.tolist(),
        "image_size": [camera.width, camera.height],
        "seed": int(seed),
        "pose_id": pose_id,
    }
    if extra:
        labels.update(extra)
    return labels


def np_t(x: np.ndarray):
    import torch

    return torch.as_tensor(np.asarray(x, dtype=np.float64))
