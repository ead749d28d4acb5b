"""Horizontal flips for HMR training: the mirrored image with labels that stay exact.

Mirroring the image about its vertical centre line is mirroring the camera frame about its YZ
plane (x -> -x) with left and right swapped. Every label follows exactly: pixels u -> W - u
(pixel centres at +0.5, see ``render.cameras``), the principal point cx -> W - cx, camera-frame
points x -> -x, and each rotation R -> M R M (M = diag(-1, 1, 1)), which for axis-angle is
(x, y, z) -> (x, -y, -z), applied to the mirror joint. Shape is kept: the bodies' shape spaces are
left-right symmetric (anny's phenotypes exactly, SMPL's betas nearly). A flip doubles the poses a
small rendered set shows the network for free.
"""

from __future__ import annotations

import torch

from dreamer_core.bodies.skeleton import BODY_JOINTS, JOINT_NAMES


def _mirror_index(names: tuple[str, ...]) -> torch.Tensor:
    def mirror(name: str) -> str:
        for a, b in (("left_", "right_"), ("right_", "left_")):
            if a in name:
                return name.replace(a, b)
        return name

    return torch.tensor([names.index(mirror(n)) for n in names])


JOINT_MIRROR = _mirror_index(JOINT_NAMES)
BODY_JOINT_MIRROR = _mirror_index(BODY_JOINTS)
_AXIS_ANGLE_SIGN = torch.tensor([1.0, -1.0, -1.0])
_X_SIGN = torch.tensor([-1.0, 1.0, 1.0])


def flip_batch(batch: dict[str, torch.Tensor], which: torch.Tensor) -> dict[str, torch.Tensor]:
    """A copy of ``batch`` (see ``hmr.train.samples_to_batch``) with the samples where ``which``
    [B] is True mirrored; the rest are untouched."""
    if not bool(which.any()):
        return batch
    out = dict(batch)
    device = batch["image"].device  # the signs and indices follow the batch (CPU or GPU)
    x_sign, aa_sign = _X_SIGN.to(device), _AXIS_ANGLE_SIGN.to(device)
    w = which.view(-1, 1, 1, 1)
    out["image"] = torch.where(w, batch["image"].flip(-1), batch["image"])
    size = float(batch["image"].shape[-1])
    K = batch["K"].clone()
    K[:, 0, 2] = size - K[:, 0, 2]
    kp = batch["keypoints_2d"][:, JOINT_MIRROR].clone()
    kp[..., 0] = size - kp[..., 0]
    flipped = {
        "K": K,
        "keypoints_2d": kp,
        "joints_3d": batch["joints_3d"][:, JOINT_MIRROR] * x_sign,
        "transl_cam": batch["transl_cam"] * x_sign,
        "global_orient_cam": batch["global_orient_cam"] * aa_sign,
        "body_pose": batch["body_pose"][:, BODY_JOINT_MIRROR] * aa_sign,
    }
    for key, value in flipped.items():
        mask = which.view(-1, *([1] * (value.ndim - 1)))
        out[key] = torch.where(mask, value, batch[key])
    return out
