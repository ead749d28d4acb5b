"""The shared skeleton and keypoint conventions every body backend speaks.

Poses are stored once, in SMPL-X's body convention (global orientation + 21 body joints as
axis-angle, each a rotation in world-aligned axes relative to the T-pose), so the same pose bank
drives anny, SMPL and SMPL-X. World frame: SMPL's (metres, Y up, facing +Z, body left = +X).
"""

from __future__ import annotations

import math

# SMPL / SMPL-X body skeleton: pelvis (driven by global_orient) + 21 body joints.
SKELETON_JOINTS: tuple[str, ...] = (
    "pelvis",
    "left_hip", "right_hip", "spine1",
    "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3",
    "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)  # fmt: skip
SKELETON_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
)  # fmt: skip
BODY_JOINTS: tuple[str, ...] = SKELETON_JOINTS[1:]
NUM_BODY_JOINTS = len(BODY_JOINTS)  # 21

COCO17: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
FOOT_KEYPOINTS: tuple[str, ...] = (
    "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip

# Every backend returns joints in this order: COCO-17 first (what detectors and OKS use), then the
# six foot points, then the skeleton joints (what 3D metrics and skeleton drawings use).
JOINT_NAMES: tuple[str, ...] = COCO17 + FOOT_KEYPOINTS + tuple(f"skel_{n}" for n in SKELETON_JOINTS)
SKELETON_SLICE = slice(len(COCO17) + len(FOOT_KEYPOINTS), len(JOINT_NAMES))

# Body parts share the skeleton's names: a vertex belongs to the joint that moves it most.
PART_NAMES: tuple[str, ...] = SKELETON_JOINTS

# Canonical A-pose (PNCC colours come from it): arms lowered from the T-pose by pi/2.3 about the
# forward axis, legs spread by pi/18. Expressed as axis-angle on the shared skeleton.
A_POSE_ARM_ANGLE = math.pi / 2.3
A_POSE_LEG_ANGLE = math.pi / 18


def a_pose_body_pose() -> list[list[float]]:
    pose = [[0.0, 0.0, 0.0] for _ in BODY_JOINTS]
    pose[BODY_JOINTS.index("left_shoulder")] = [0.0, 0.0, -A_POSE_ARM_ANGLE]
    pose[BODY_JOINTS.index("right_shoulder")] = [0.0, 0.0, A_POSE_ARM_ANGLE]
    pose[BODY_JOINTS.index("left_hip")] = [0.0, 0.0, A_POSE_LEG_ANGLE]
    pose[BODY_JOINTS.index("right_hip")] = [0.0, 0.0, -A_POSE_LEG_ANGLE]
    return pose
