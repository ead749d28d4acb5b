"""HMR training losses: 3D joints (pelvis-relative, camera frame), 2D reprojection (visible
joints, in units of the crop side) and parameters (rotation matrices, shape). The body model's
forward pass is differentiable, so joint losses reach the predicted rotations and shape.

Joint terms use the 22 skeleton joints, the ones MPJPE / PA-MPJPE score: posing the skeleton
alone skips skinning the mesh, which was ~75% of a CPU training step (see ``make bench``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dreamer_core.bodies.rotations import axis_angle_to_matrix
from dreamer_core.bodies.skeleton import SKELETON_SLICE
from dreamer_core.hmr.camera import project, weak_perspective_to_translation


@dataclass(frozen=True)
class LossWeights:
    joints_3d: float = 1.0
    keypoints_2d: float = 1.0
    rotations: float = 0.5
    shape: float = 0.05


def predicted_joints(body: Any, pred: dict[str, torch.Tensor], K: torch.Tensor, size: float) -> torch.Tensor:
    """Camera-frame skeleton joints [B, 22, 3] of the predicted parameters and camera."""
    params = {k: pred[k] for k in ("global_orient", "body_pose", "shape")}
    t = weak_perspective_to_translation(pred["cam"], K[:, 0, 0], size)
    return body.skeleton_joints(params) + t[:, None]


def hmr_losses(body: Any, pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
               weights: LossWeights = LossWeights()) -> dict[str, torch.Tensor]:  # fmt: skip
    """``batch``: image [B, 3, S, S], K, joints_3d [B, J, 3] (camera frame, every joint of
    ``skeleton.JOINT_NAMES``), keypoints_2d [B, J, 3] (u, v, visibility), global_orient_cam [B, 3],
    body_pose [B, 21, 3], shape [B, S]."""
    size = float(batch["image"].shape[-1])
    joints = predicted_joints(body, pred, batch["K"], size)
    gt = batch["joints_3d"][:, SKELETON_SLICE]
    rel = (joints - joints[:, :1]) - (gt - gt[:, :1])
    kp = batch["keypoints_2d"][:, SKELETON_SLICE]
    vis = (kp[..., 2] > 0).float()
    err2d = (project(joints, batch["K"]) - kp[..., :2]).abs().sum(-1) / size
    gt_rot = axis_angle_to_matrix(torch.cat([batch["global_orient_cam"][:, None], batch["body_pose"]], 1))
    losses = {
        "joints_3d": rel.abs().sum(-1).mean(),
        "keypoints_2d": (err2d * vis).sum() / vis.sum().clamp_min(1.0),
        "rotations": (pred["rotmat"] - gt_rot).pow(2).sum((-1, -2)).mean(),
        "shape": (pred["shape"] - batch["shape"]).pow(2).sum(-1).mean(),
    }
    losses["total"] = sum(getattr(weights, k) * v for k, v in losses.items())
    return losses
