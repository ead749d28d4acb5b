"""The HMR losses vanish at a rendered sample's own parameters and camera, grow when the pose is
perturbed, and pass gradients through the body model to the predicted rotations and shape."""

from __future__ import annotations

import numpy as np
import torch

from dreamer_core.bodies.rotations import axis_angle_to_matrix
from dreamer_core.hmr.camera import translation_to_weak_perspective
from dreamer_core.hmr.losses import hmr_losses
from tests.helpers.renders import render_poses


def test_losses_zero_at_truth_and_differentiable(anny_body):
    samples = render_poses(anny_body, 6, seed=11, purpose="loss")
    lab = [s.labels for s in samples]

    def t(key, get=lambda x, k: x[k]):
        return torch.tensor(np.array([get(x, key) for x in lab]), dtype=torch.float32)

    batch = {"image": torch.zeros(6, 3, 48, 48), "K": t("K"), "joints_3d": t("joints_3d"),
             "keypoints_2d": t("keypoints_2d"), "global_orient_cam": t("global_orient_cam"),
             "body_pose": t("body_pose", lambda x, k: x["params"][k]),
             "shape": t("shape", lambda x, k: x["params"][k])}  # fmt: skip
    cam = translation_to_weak_perspective(t("transl_cam"), batch["K"][:, 0, 0], 48.0)
    aa = torch.cat([batch["global_orient_cam"][:, None], batch["body_pose"]], 1)
    truth = {"global_orient": aa[:, 0], "body_pose": aa[:, 1:], "shape": batch["shape"], "cam": cam,
             "rotmat": axis_angle_to_matrix(aa)}  # fmt: skip
    zero = hmr_losses(anny_body, truth, batch)
    for name in ("joints_3d", "keypoints_2d", "rotations", "shape"):
        assert zero[name].item() < 1e-4, (name, zero[name].item())

    bent = aa.clone().requires_grad_(True)
    shape = batch["shape"].clone().requires_grad_(True)
    noisy = bent + 0.3 * torch.randn_like(bent)
    pred = {"global_orient": noisy[:, 0], "body_pose": noisy[:, 1:], "shape": shape, "cam": cam,
            "rotmat": axis_angle_to_matrix(noisy)}  # fmt: skip
    losses = hmr_losses(anny_body, pred, batch)
    assert losses["joints_3d"] > 0.01 and losses["keypoints_2d"] > 0.005 and losses["rotations"] > 0.1
    losses["joints_3d"].backward()
    assert bent.grad.abs().sum() > 0 and shape.grad.abs().sum() > 0
