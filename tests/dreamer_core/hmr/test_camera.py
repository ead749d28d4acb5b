"""The HMR conventions agree with the labels: from a rendered sample's own parameters
(global_orient_cam, body_pose, shape, transl_cam), the body model plus the camera helpers give
back its 3D joints and its 2D keypoints; the 6D rotation round-trips and stays a rotation."""

from __future__ import annotations

import numpy as np
import torch

from dreamer_core.bodies.rotations import axis_angle_to_matrix
from dreamer_core.hmr.camera import project, translation_to_weak_perspective, weak_perspective_to_translation
from dreamer_core.hmr.rotations import matrix_to_rot6d, rot6d_to_matrix
from tests.helpers.renders import render_poses


def test_rot6d_round_trip_and_orthonormal():
    rot = axis_angle_to_matrix(torch.randn(64, 3))
    np.testing.assert_allclose(rot6d_to_matrix(matrix_to_rot6d(rot)), rot, atol=1e-5)
    r = rot6d_to_matrix(torch.randn(64, 6))
    eye = torch.eye(3).expand(64, 3, 3)
    np.testing.assert_allclose(r.transpose(-1, -2) @ r, eye, atol=1e-5)
    np.testing.assert_allclose(torch.linalg.det(r), torch.ones(64), atol=1e-5)


def test_labels_reproduced_from_parameters(anny_body):
    samples = render_poses(anny_body, 8, seed=9, purpose="hmr", images=False)
    lab = [s.labels for s in samples]
    params = {
        "global_orient": torch.tensor([x["global_orient_cam"] for x in lab], dtype=torch.float32),
        "body_pose": torch.tensor([x["params"]["body_pose"] for x in lab], dtype=torch.float32),
        "shape": torch.tensor([x["params"]["shape"] for x in lab], dtype=torch.float32),
    }
    t = torch.tensor([x["transl_cam"] for x in lab], dtype=torch.float32)
    K = torch.tensor([x["K"] for x in lab], dtype=torch.float32)
    focal, size = K[:, 0, 0], float(lab[0]["image_size"][0])
    t_back = weak_perspective_to_translation(translation_to_weak_perspective(t, focal, size), focal, size)
    np.testing.assert_allclose(t_back, t, rtol=1e-5)
    with torch.no_grad():
        joints = anny_body.forward(params).joints + t[:, None]
    np.testing.assert_allclose(joints, np.array([x["joints_3d"] for x in lab]), atol=1e-4)
    kp = np.array([x["keypoints_2d"] for x in lab])
    uv = project(joints, K).numpy()
    vis = kp[..., 2] > 0
    np.testing.assert_allclose(uv[vis], kp[..., :2][vis], atol=1e-2)
