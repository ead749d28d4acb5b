"""From the network's camera output to a translation, and from body joints to pixels.

The network predicts a weak-perspective camera (s, tx, ty) for the crop, as HMR2 does; with the
crop's focal length f and side S, the pelvis sits at t = (tx, ty, 2 f / (S s)) in the camera frame.
Bodies come from the backend with the pelvis at the origin, so camera-frame joints are
``forward(global_orient_cam, body_pose, shape).joints + t``.
"""

from __future__ import annotations

import torch


def weak_perspective_to_translation(cam: torch.Tensor, focal: torch.Tensor, size: float) -> torch.Tensor:
    """cam [B, 3] (s, tx, ty), focal [B] in pixels -> translation [B, 3] in metres."""
    s = cam[:, 0].clamp_min(1e-3)
    return torch.stack([cam[:, 1], cam[:, 2], 2.0 * focal / (size * s)], dim=-1)


def translation_to_weak_perspective(t: torch.Tensor, focal: torch.Tensor, size: float) -> torch.Tensor:
    """The inverse, for targets and for initialising the camera head."""
    return torch.stack([2.0 * focal / (size * t[:, 2].clamp_min(1e-3)), t[:, 0], t[:, 1]], dim=-1)


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera-frame points [B, J, 3] -> pixels [B, J, 2] through intrinsics K [B, 3, 3]."""
    z = points[..., 2:].clamp_min(1e-4)
    uv = points[..., :2] / z
    return uv * torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None] + K[:, None, :2, 2]
