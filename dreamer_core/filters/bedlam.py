"""Export labels as a BEDLAM-style ``.npz`` so existing SMPL / SMPL-X HMR trainers can read the
dataset: imgname, center, scale (box side / 200), pose_cam (root orientation in the camera frame +
body pose), shape, trans_cam (the model's own translation in the camera frame), gtkps, cam_int."""

from __future__ import annotations

from typing import Any

import numpy as np


def bedlam_arrays(
    labels: list[dict[str, Any]], imgnames: list[str], native_pelvis: np.ndarray
) -> dict[str, np.ndarray]:
    """``native_pelvis`` [N, 3]: the model's own pelvis at zero pose for each sample's shape (our
    world frame puts the pelvis at the origin; SMPL's translation does not)."""
    box = np.array([lab["bbox"] for lab in labels], dtype=np.float64)
    centre = np.stack([(box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2], axis=1)
    side = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    go = np.array([lab["global_orient_cam"] for lab in labels], dtype=np.float64)
    body = np.array([np.asarray(lab["params"]["body_pose"]).reshape(-1) for lab in labels], dtype=np.float64)
    return {
        "imgname": np.array(imgnames),
        "center": centre.astype(np.float32),
        "scale": (side / 200.0).astype(np.float32),
        "pose_cam": np.concatenate([go, body], axis=1).astype(np.float32),
        "shape": np.array([lab["params"]["shape"] for lab in labels], dtype=np.float32),
        "trans_cam": (np.array([lab["transl_cam"] for lab in labels]) - native_pelvis).astype(np.float32),
        "gtkps": np.array([lab["keypoints_2d"] for lab in labels], dtype=np.float32),
        "cam_int": np.array([lab["K"] for lab in labels], dtype=np.float32),
    }
