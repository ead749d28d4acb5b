"""Difficulty cues of a pose that raw joint angles hide from a small tree ensemble: how much of
the body hides behind itself, how foreshortened the limbs look, how often limbs cross in the
image, and how close the joints sit to their anatomical limits.

Round 2 draws a pose before its camera exists (the camera is sampled at render time: yaw over
the full circle, a small pitch), so every view-dependent cue is the average over evenly spaced
yaws at zero pitch: the expectation the draw actually faces, not one sample's camera. Cameras are
orthographic here (the sampler keeps the body far relative to its depth), in the sampler's own
axes (``rotation_yaw_pitch``), so "front" means what the renderer means by it.
"""

from __future__ import annotations

import numpy as np

from dreamer_core.bodies.skeleton import BODY_JOINTS, SKELETON_JOINTS, SKELETON_PARENTS
from dreamer_core.poses.anatomical import axis_angle_to_euler
from dreamer_core.poses.limits import joint_limits_deg
from dreamer_core.render.cameras import rotation_yaw_pitch

NUM_VIEWS = 8
# The joints a COCO detector is scored on (the face points sit on the head joint).
SCORED_JOINTS: tuple[str, ...] = (
    "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
LIMBS: tuple[tuple[str, str], ...] = (
    ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"), ("left_elbow", "left_wrist"),
    ("right_elbow", "right_wrist"), ("left_hip", "left_knee"), ("right_hip", "right_knee"),
    ("left_knee", "left_ankle"), ("right_knee", "right_ankle"),
)  # fmt: skip
# Capsule radius (metres) of the bone that ends at each joint: the torso is thick, forearms thin.
_RADIUS_BY_CHILD = {
    "left_hip": 0.10, "right_hip": 0.10, "spine1": 0.14, "spine2": 0.14, "spine3": 0.14,
    "neck": 0.07, "left_collar": 0.07, "right_collar": 0.07, "head": 0.09,
    "left_shoulder": 0.06, "right_shoulder": 0.06, "left_elbow": 0.05, "right_elbow": 0.05,
    "left_wrist": 0.04, "right_wrist": 0.04, "left_knee": 0.08, "right_knee": 0.08,
    "left_ankle": 0.06, "right_ankle": 0.06, "left_foot": 0.04, "right_foot": 0.04,
}  # fmt: skip
MIN_HALF_RANGE_DEG = 10.0  # axes narrower than this (e.g. the knee's twist) are always "near a limit"
NEAR_LIMIT = 0.15  # normalised margin below which a joint counts as close to its limit
# Hinges rest at a limit (a straight knee or elbow is fully extended): their margin is a feature of
# its own but not part of the "near a limit" summary, which would otherwise flag every standing pose.
HINGES: tuple[str, ...] = ("left_knee", "right_knee", "left_elbow", "right_elbow")
_NOT_HINGE = np.array([n not in HINGES for n in BODY_JOINTS])


def _index(name: str) -> int:
    return SKELETON_JOINTS.index(name)


_BONES = np.array([(p, c) for c, p in enumerate(SKELETON_PARENTS) if p >= 0])  # [21, 2] (parent, child)
_BONE_RADIUS = np.array([_RADIUS_BY_CHILD[SKELETON_JOINTS[c]] for _, c in _BONES])
_SCORED = np.array([_index(n) for n in SCORED_JOINTS])
_LIMBS = np.array([(_index(a), _index(b)) for a, b in LIMBS])
# Segments tested for crossings: the limbs and the trunk line (pelvis to neck).
_CROSS_SEGMENTS = np.concatenate([_LIMBS, [[_index("pelvis"), _index("neck")]]])
_CROSS_PAIRS = np.array([(i, j) for i in range(len(_CROSS_SEGMENTS)) for j in range(i + 1, len(_CROSS_SEGMENTS))
                         if not set(_CROSS_SEGMENTS[i]) & set(_CROSS_SEGMENTS[j])])  # fmt: skip
# A joint is never "hidden" by a bone it belongs to.
_INCIDENT = np.array([[j in bone for bone in _BONES] for j in _SCORED])  # [13, 21]


def view_rotations(num_views: int = NUM_VIEWS) -> np.ndarray:
    """[V, 3, 3] world -> camera rotations at evenly spaced yaws and zero pitch, in the camera
    sampler's convention (camera x = right, y = down, z = depth away from the camera)."""
    flip = np.diag([1.0, -1.0, -1.0])
    return np.stack([flip @ rotation_yaw_pitch(2 * np.pi * k / num_views, 0.0) for k in range(num_views)])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def occluded(cam: np.ndarray) -> np.ndarray:
    """[..., 13] bool per scored joint: it projects inside a non-incident bone's capsule that lies in
    front of it by more than the capsule's radius (hidden behind the torso or another limb)."""
    p = cam[..., _SCORED, :][..., :, None, :]  # [..., 13, 1, 3]
    a, b = cam[..., _BONES[:, 0], :][..., None, :, :], cam[..., _BONES[:, 1], :][..., None, :, :]  # [..., 1, 21, 3]
    ab = b[..., :2] - a[..., :2]
    t = np.clip(((p[..., :2] - a[..., :2]) * ab).sum(-1) / np.maximum((ab**2).sum(-1), 1e-12), 0.0, 1.0)
    q = a + t[..., None] * (b - a)
    dist = np.linalg.norm(p[..., :2] - q[..., :2], axis=-1)
    behind = p[..., 2] - q[..., 2]
    hidden = (dist < _BONE_RADIUS) & (behind > _BONE_RADIUS) & ~_INCIDENT
    return hidden.any(-1)


def foreshortening(cam: np.ndarray) -> np.ndarray:
    """[..., 8] projected / 3D length per limb (1 = parallel to the image, 0 = pointing at the camera)."""
    d = cam[..., _LIMBS[:, 1], :] - cam[..., _LIMBS[:, 0], :]
    return np.linalg.norm(d[..., :2], axis=-1) / np.maximum(np.linalg.norm(d, axis=-1), 1e-9)


def crossings(cam: np.ndarray) -> np.ndarray:
    """[...] number of pairs of (non-adjacent) limb / trunk segments whose 2D projections cross."""
    s = cam[..., _CROSS_SEGMENTS, :2]  # [..., S, 2 ends, 2]
    p1, p2 = s[..., _CROSS_PAIRS[:, 0], 0, :], s[..., _CROSS_PAIRS[:, 0], 1, :]
    q1, q2 = s[..., _CROSS_PAIRS[:, 1], 0, :], s[..., _CROSS_PAIRS[:, 1], 1, :]
    d1, d2 = _cross(q2 - q1, p1 - q1), _cross(q2 - q1, p2 - q1)
    d3, d4 = _cross(p2 - p1, q1 - p1), _cross(p2 - p1, q2 - p1)
    return ((d1 * d2 < 0) & (d3 * d4 < 0)).sum(-1)


def limit_margins(body_pose: np.ndarray) -> np.ndarray:
    """[N, 21] per body joint, the smallest normalised distance of its Euler angles to their
    anatomical limits (1 = every axis mid-range, 0 = at a limit, < 0 = beyond it; clipped to
    [-1, 1]). Axes narrower than ``MIN_HALF_RANGE_DEG`` are left out."""
    euler = axis_angle_to_euler(np.asarray(body_pose, dtype=np.float64).reshape(-1, len(BODY_JOINTS), 3))
    lim = joint_limits_deg()
    centre, half = lim.mean(-1), (lim[..., 1] - lim[..., 0]) / 2
    margin = 1.0 - np.abs(euler - centre) / np.maximum(half, 1e-9)
    margin = np.where(half >= MIN_HALF_RANGE_DEG, margin, np.inf)
    return np.clip(margin.min(-1), -1.0, 1.0)


def difficulty_features(world_joints: np.ndarray, body_pose: np.ndarray, chunk: int = 512) -> np.ndarray:
    """[N, 50] per pose. View cues (26): per scored joint the share of views it is hidden in, the
    mean and worst-view hidden share, per limb the mean foreshortening, the mean per-view worst limb
    foreshortening, mean and worst-view crossings. Limit cues (24): per joint its limit margin, and
    over the non-hinge joints the smallest margin, the mean margin and the share near a limit."""
    rot = view_rotations()
    world = np.asarray(world_joints, dtype=np.float64)
    blocks = []
    for start in range(0, len(world), chunk):
        cam = np.einsum("vij,nkj->nvki", rot, world[start : start + chunk])  # [n, V, 22, 3]
        hidden = occluded(cam).astype(np.float64)  # [n, V, 13]
        fore = foreshortening(cam)  # [n, V, 8]
        cross = crossings(cam).astype(np.float64)  # [n, V]
        blocks.append(np.concatenate([
            hidden.mean(1), hidden.mean(2).mean(1, keepdims=True), hidden.mean(2).max(1, keepdims=True),
            fore.mean(1), fore.min(2).mean(1, keepdims=True),
            cross.mean(1, keepdims=True), cross.max(1, keepdims=True),
        ], axis=1))  # fmt: skip
    views = np.concatenate(blocks) if blocks else np.zeros((0, 26))
    margin = limit_margins(body_pose) if len(world) else np.zeros((0, len(BODY_JOINTS)))
    rest = margin[:, _NOT_HINGE]
    summary = np.stack([rest.min(1), rest.mean(1), (rest < NEAR_LIMIT).mean(1)], axis=1)
    return np.concatenate([views, margin, summary], axis=1)
