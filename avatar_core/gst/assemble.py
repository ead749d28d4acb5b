"""From GST's outputs to Gaussians in the input camera's frame, and cameras relative to it.

Centres are the posed vertices (pelvis placed by the predicted weak-perspective camera) plus the
predicted offsets; offsets and Gaussian rotations are predicted in the frame of each vertex's
skeleton part and turned with it, so an avatar keeps its look when the pose changes. Target views
are expressed relative to the input camera (V_target V_input^-1): nothing needs the world frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dreamer_core.bodies.rotations import matrix_to_quaternion
from dreamer_core.bodies.skeleton import SKELETON_PARENTS
from dreamer_core.hmr.camera import weak_perspective_to_translation


def farthest_points(points: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of ``count`` points spread evenly over ``points`` [V, 3] (greedy farthest-point
    sampling from the point nearest the centroid: deterministic)."""
    if count >= len(points):
        return torch.arange(len(points))
    chosen = torch.empty(count, dtype=torch.long)
    chosen[0] = (points - points.mean(0)).norm(dim=-1).argmin()
    dist = (points - points[chosen[0]]).norm(dim=-1)
    for i in range(1, count):
        chosen[i] = dist.argmax()
        dist = torch.minimum(dist, (points - points[chosen[i]]).norm(dim=-1))
    return chosen


def joint_frames(rotmat: torch.Tensor) -> torch.Tensor:
    """Local joint rotations [B, 22, 3, 3] (index 0 = global orientation) -> global ones."""
    frames = [rotmat[:, 0]]
    for j in range(1, rotmat.shape[1]):
        frames.append(frames[SKELETON_PARENTS[j]] @ rotmat[:, j])
    return torch.stack(frames, 1)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """[..., 4] (w, x, y, z; any norm) -> [..., 3, 3]."""
    w, x, y, z = (q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(*q.shape[:-1], 3, 3)


class Assembler:
    """Holds the body model, the chosen vertices and their parts."""

    def __init__(self, body: Any, vertex_ids: torch.Tensor) -> None:
        self.body = body
        self.vertex_ids = vertex_ids.long()
        self.parts = torch.as_tensor(np.asarray(body.part_labels))[self.vertex_ids].long()

    @classmethod
    def for_body(cls, body: Any, count: int) -> Assembler:
        return cls(body, farthest_points(body.canonical_vertices.detach().cpu(), count))

    def vertex_spacing(self) -> float:
        """Median distance from a chosen vertex to its nearest chosen neighbour (canonical pose)."""
        p = self.body.canonical_vertices.detach().cpu()[self.vertex_ids]
        d = torch.cdist(p, p)
        d.fill_diagonal_(float("inf"))
        return float(d.min(1).values.median())

    def vertices(self, pred: dict[str, torch.Tensor], K: torch.Tensor, size: float) -> torch.Tensor:
        """Posed chosen vertices in the input camera's frame [B, V, 3]."""
        out = self.body.forward({k: pred[k] for k in ("global_orient", "body_pose", "shape")}, validate=False)
        t = weak_perspective_to_translation(pred["cam"], K[:, 0, 0], size)
        return out.vertices[:, self.vertex_ids] + t[:, None]

    def gaussians(self, pred: dict[str, torch.Tensor], K: torch.Tensor, size: float) -> dict[str, torch.Tensor]:
        """Rasterizer inputs [B, V, ...] in the input camera's frame."""
        frames = joint_frames(pred["rotmat"])[:, self.parts]  # [B, V, 3, 3]
        means = self.vertices(pred, K, size) + (frames @ pred["offset"][..., None])[..., 0]
        quats = matrix_to_quaternion(frames @ quat_to_matrix(pred["quat"]))
        return {"means": means, "quats": quats, "scales": pred["log_scale"].exp(),
                "opacities": torch.sigmoid(pred["opacity_logit"]), "colors": pred["sh"]}  # fmt: skip


def relative_viewmats(input_viewmat: torch.Tensor, target_viewmats: torch.Tensor) -> torch.Tensor:
    """[B, 4, 4] and [B, T, 4, 4] world -> camera -> [B, T, 4, 4] input camera -> target camera."""
    return target_viewmats @ torch.linalg.inv(input_viewmat)[:, None]
