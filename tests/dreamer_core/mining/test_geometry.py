"""The difficulty cues of the hardness model measure what they say:

- on rendered samples, the capsule self-occlusion test agrees with the renderer's depth-buffer
  visibility far better than "nothing is occluded" does;
- a hand-made skeleton: a hand behind the back is hidden from the front and seen from behind, the
  far shoulder hides behind the torso in a side view; a limb pointing at the camera is fully
  foreshortened; crossed arms cross in 2D, a T-pose does not;
- limit margins are 1 mid-range and 0 at a limit; per pose, lying bodies hide more of themselves
  than standing ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dreamer_core.bodies.skeleton import BODY_JOINTS, SKELETON_JOINTS, SKELETON_SLICE
from dreamer_core.mining import geometry
from dreamer_core.mining.geometry import (
    LIMBS,
    SCORED_JOINTS,
    crossings,
    difficulty_features,
    foreshortening,
    limit_margins,
    occluded,
    view_rotations,
)
from dreamer_core.mining.hardness import world_joints
from dreamer_core.poses.anatomical import euler_to_axis_angle
from dreamer_core.poses.limits import joint_limits_deg
from tests.helpers.renders import render_poses

T_POSE = {
    "pelvis": (0, 0, 0), "left_hip": (0.09, -0.08, 0), "right_hip": (-0.09, -0.08, 0), "spine1": (0, 0.1, 0),
    "left_knee": (0.1, -0.5, 0), "right_knee": (-0.1, -0.5, 0), "spine2": (0, 0.22, 0),
    "left_ankle": (0.1, -0.9, 0), "right_ankle": (-0.1, -0.9, 0), "spine3": (0, 0.35, 0),
    "left_foot": (0.1, -0.95, 0.1), "right_foot": (-0.1, -0.95, 0.1), "neck": (0, 0.5, 0),
    "left_collar": (0.07, 0.45, 0), "right_collar": (-0.07, 0.45, 0), "head": (0, 0.6, 0),
    "left_shoulder": (0.18, 0.45, 0), "right_shoulder": (-0.18, 0.45, 0), "left_elbow": (0.45, 0.45, 0),
    "right_elbow": (-0.45, 0.45, 0), "left_wrist": (0.7, 0.45, 0), "right_wrist": (-0.7, 0.45, 0),
}  # fmt: skip
FRONT, RIGHT_SIDE, BACK = 0, 2, 4  # view indices of 8: yaw 0 (facing the body), pi / 2 (its right), pi


def skeleton(**moved: tuple[float, float, float]) -> np.ndarray:
    """[22, 3] the T-pose with some joints moved (world frame: Y up, facing +Z, left = +X)."""
    return np.array([moved.get(n, T_POSE[n]) for n in SKELETON_JOINTS], dtype=np.float64)


def views(world: np.ndarray) -> np.ndarray:
    return np.einsum("vij,kj->vki", view_rotations(), world)  # [8, 22, 3]


def hidden(world: np.ndarray, view: int, joint: str) -> bool:
    return bool(occluded(views(world))[view, SCORED_JOINTS.index(joint)])


def test_capsule_occlusion_agrees_with_the_renderers_visibility(anny_body):
    samples = render_poses(anny_body, 60, 11, "occlusion-check", images=False)
    proxy, truth = [], []
    for s in samples:
        labels = np.asarray(s.labels["keypoints_2d"])[SKELETON_SLICE][geometry._SCORED, 2]
        joints_cam = np.asarray(s.labels["joints_3d"])[SKELETON_SLICE]  # the sample's own camera frame
        inside = labels > 0
        proxy.append(occluded(joints_cam)[inside])
        truth.append(labels[inside] == 1)  # 1: in the image but behind the visible surface
    proxy, truth = np.concatenate(proxy), np.concatenate(truth)
    assert 0.05 < truth.mean() < 0.5  # the renders do hide joints
    majority = max(truth.mean(), 1 - truth.mean())
    assert (proxy == truth).mean() > majority + 0.08
    assert proxy[truth].mean() > 0.5 and proxy[~truth].mean() < 0.1


def test_hand_behind_the_back_is_hidden_from_the_front_only():
    world = skeleton(left_elbow=(0.15, 0.35, -0.2), left_wrist=(0.0, 0.3, -0.3))
    assert hidden(world, FRONT, "left_wrist") and not hidden(world, BACK, "left_wrist")
    t_pose = skeleton()
    assert not occluded(views(t_pose)[[FRONT, BACK]]).any()  # nothing hides in a flat T-pose seen face on
    # Arms down, seen from the body's right: the left shoulder is behind the torso, the right is not.
    arms_down = skeleton(left_elbow=(0.2, 0.2, 0), left_wrist=(0.22, -0.05, 0), right_elbow=(-0.2, 0.2, 0),
                         right_wrist=(-0.22, -0.05, 0))  # fmt: skip
    assert hidden(arms_down, RIGHT_SIDE, "left_shoulder") and not hidden(arms_down, RIGHT_SIDE, "right_shoulder")
    # In a T-pose the right arm points at that camera and hides its own shoulder.
    assert hidden(t_pose, RIGHT_SIDE, "right_shoulder")


def test_foreshortening_of_a_limb_pointing_at_the_camera():
    world = skeleton(left_wrist=(0.45, 0.45, 0.25))  # forearm points forward, at the front camera
    ratio = foreshortening(views(world))[:, LIMBS.index(("left_elbow", "left_wrist"))]
    assert ratio[FRONT] == pytest.approx(0.0, abs=1e-9) and ratio[RIGHT_SIDE] == pytest.approx(1.0)
    assert np.allclose(foreshortening(views(skeleton()))[[FRONT, BACK]], 1.0)  # a T-pose is flat to them


def test_crossed_arms_cross_in_2d():
    crossed = skeleton(left_elbow=(0.2, 0.25, 0.2), left_wrist=(-0.25, 0.35, 0.25),
                       right_elbow=(-0.2, 0.25, 0.15), right_wrist=(0.25, 0.35, 0.2))  # fmt: skip
    assert crossings(views(crossed))[FRONT] >= 2  # the forearms cross each other and the trunk line
    assert crossings(views(skeleton()))[FRONT] == 0


def test_limit_margins():
    lim = joint_limits_deg()
    centre = lim.mean(-1)[None]
    np.testing.assert_allclose(limit_margins(euler_to_axis_angle(centre)), 1.0, atol=1e-6)
    at_limit = centre.copy()
    knee = BODY_JOINTS.index("left_knee")
    at_limit[0, knee, 0] = lim[knee, 0, 1]  # fully bent
    margins = limit_margins(euler_to_axis_angle(at_limit))[0]
    assert margins[knee] == pytest.approx(0.0, abs=1e-6) and np.delete(margins, knee) == pytest.approx(1.0, abs=1e-6)


def test_features_per_pose(bank):
    a = bank.arrays
    feats = difficulty_features(world_joints(a), a["body_pose"])
    assert feats.shape == (len(bank), 50) and np.isfinite(feats).all()
    np.testing.assert_allclose(feats[:7], difficulty_features(world_joints(a)[:7], a["body_pose"][:7], chunk=3))
    hidden_share = pd.Series(feats[:, len(SCORED_JOINTS)]).groupby(bank.table.family.to_numpy()).mean()
    assert hidden_share["lying"] > hidden_share["standing"]
    assert difficulty_features(np.zeros((0, 22, 3)), np.zeros((0, 21, 3))).shape == (0, 50)
