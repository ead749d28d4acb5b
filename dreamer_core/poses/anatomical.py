"""Anatomical pose sampler: activity families with noise, clipped to per-joint limits.

Each family sets the joints that define it (e.g. walking swings hips and arms in opposite phase)
and leaves the rest near neutral; Gaussian noise then adds variety and the result is clipped to
``limits.joint_limits_deg``. Half of every asymmetric family is mirrored left/right.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from dreamer_core.bodies.rotations import (
    axis_angle_to_matrix,
    euler_to_matrix,
    euler_xyz_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
)
from dreamer_core.bodies.skeleton import BODY_JOINTS
from dreamer_core.poses.limits import euler_order, joint_limits_deg, mirror_euler

J = {n: i for i, n in enumerate(BODY_JOINTS)}
FamilyFn = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def _arms_down(e: np.ndarray, rng: np.random.Generator, spread: float = 12.0) -> None:
    n = e.shape[0]
    e[:, J["left_shoulder"], 2] = rng.normal(-72, spread, n)
    e[:, J["right_shoulder"], 2] = rng.normal(72, spread, n)
    e[:, J["left_elbow"], 1] = -rng.uniform(0, 30, n)
    e[:, J["right_elbow"], 1] = rng.uniform(0, 30, n)


def _upright(n: int, rng: np.random.Generator, lean_deg: float = 5.0) -> np.ndarray:
    return np.deg2rad(rng.normal(0.0, lean_deg, (n, 3))) * np.array([1.0, 0.0, 1.0])


def standing(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    e = np.zeros((n, len(BODY_JOINTS), 3))
    _arms_down(e, rng)
    e[:, J["left_hip"], 2] = rng.uniform(0, 15, n)
    e[:, J["right_hip"], 2] = -rng.uniform(0, 15, n)
    return e, _upright(n, rng)


def _gait(rng: np.random.Generator, n: int, hip_amp: float, knee: tuple[float, float],
          arm_amp: float, elbow: float, lean: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    e = np.zeros((n, len(BODY_JOINTS), 3))
    phase = rng.uniform(0, 2 * np.pi, n)
    s = np.sin(phase)
    e[:, J["left_hip"], 0] = -hip_amp * s
    e[:, J["right_hip"], 0] = hip_amp * s
    e[:, J["left_knee"], 0] = knee[0] + (knee[1] - knee[0]) * np.clip(np.sin(phase + 1.2), 0, 1)
    e[:, J["right_knee"], 0] = knee[0] + (knee[1] - knee[0]) * np.clip(np.sin(phase + 1.2 + np.pi), 0, 1)
    _arms_down(e, rng, spread=6.0)
    e[:, J["left_shoulder"], 1] = -arm_amp * -s  # arms swing against the legs
    e[:, J["right_shoulder"], 1] = -arm_amp * s
    e[:, J["left_elbow"], 1] = -elbow
    e[:, J["right_elbow"], 1] = elbow
    e[:, J["spine1"], 0] = lean
    return e, _upright(n, rng)


def walking(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return _gait(rng, n, hip_amp=25, knee=(5, 45), arm_amp=25, elbow=20, lean=3)


def running(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return _gait(rng, n, hip_amp=50, knee=(20, 110), arm_amp=45, elbow=90, lean=12)


def sitting(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    e = np.zeros((n, len(BODY_JOINTS), 3))
    e[:, J["left_hip"], 0] = rng.normal(-88, 8, n)
    e[:, J["right_hip"], 0] = rng.normal(-88, 8, n)
    e[:, J["left_hip"], 2] = rng.uniform(0, 20, n)
    e[:, J["right_hip"], 2] = -rng.uniform(0, 20, n)
    e[:, J["left_knee"], 0] = rng.normal(90, 12, n)
    e[:, J["right_knee"], 0] = rng.normal(90, 12, n)
    _arms_down(e, rng)
    e[:, J["left_shoulder"], 1] = -rng.uniform(10, 45, n)
    e[:, J["right_shoulder"], 1] = rng.uniform(10, 45, n)
    e[:, J["left_elbow"], 1] = -rng.uniform(30, 90, n)
    e[:, J["right_elbow"], 1] = rng.uniform(30, 90, n)
    return e, _upright(n, rng)


def crouching(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    e = np.zeros((n, len(BODY_JOINTS), 3))
    depth = rng.uniform(0.5, 1.0, n)
    for side, sign in (("left", 1), ("right", -1)):
        e[:, J[f"{side}_hip"], 0] = -115 * depth
        e[:, J[f"{side}_hip"], 2] = sign * rng.uniform(5, 30, n)
        e[:, J[f"{side}_knee"], 0] = 135 * depth
        e[:, J[f"{side}_ankle"], 0] = -25 * depth
        e[:, J[f"{side}_shoulder"], 1] = -sign * rng.uniform(20, 80, n)
        e[:, J[f"{side}_shoulder"], 2] = -sign * rng.uniform(20, 70, n)
        e[:, J[f"{side}_elbow"], 1] = -sign * rng.uniform(10, 80, n)
    e[:, J["spine1"], 0] = 25 * depth
    e[:, J["spine2"], 0] = 10 * depth
    return e, _upright(n, rng)


def reaching(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    e = np.zeros((n, len(BODY_JOINTS), 3))
    _arms_down(e, rng)
    e[:, J["left_shoulder"], 2] = rng.uniform(-30, 95, n)
    e[:, J["left_shoulder"], 1] = rng.uniform(-105, 20, n)
    e[:, J["left_elbow"], 1] = -rng.uniform(0, 60, n)
    e[:, J["spine1"], 1] = rng.uniform(-20, 20, n)
    e[:, J["spine2"], 2] = rng.uniform(-12, 12, n)
    e[:, J["spine1"], 0] = rng.uniform(-5, 35, n)
    e[:, J["neck"], 1] = rng.uniform(-35, 35, n)
    return e, _upright(n, rng)


def lying(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    e = np.zeros((n, len(BODY_JOINTS), 3))
    _arms_down(e, rng, spread=25.0)
    e[:, J["left_knee"], 0] = rng.uniform(0, 60, n)
    e[:, J["right_knee"], 0] = rng.uniform(0, 60, n)
    e[:, J["left_hip"], 0] = -rng.uniform(0, 50, n)
    e[:, J["right_hip"], 0] = -rng.uniform(0, 50, n)
    # On the back, a side or the front: tilt the body axis to horizontal, roll about it.
    roll = rng.choice([0.0, 90.0, 180.0, -90.0], n) + rng.normal(0, 15, n)
    orient = np.stack([np.full(n, -90.0) + rng.normal(0, 8, n), roll, rng.normal(0, 10, n)], -1)
    rot = euler_xyz_to_matrix(torch.as_tensor(np.deg2rad(orient)))
    return e, matrix_to_axis_angle(rot).numpy()


FAMILIES: dict[str, FamilyFn] = {
    "standing": standing,
    "walking": walking,
    "running": running,
    "sitting": sitting,
    "crouching": crouching,
    "reaching": reaching,
    "lying": lying,
}


def sample_anatomical(
    n: int, family_weights: dict[str, float], noise_deg: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` poses. Returns global_orient [n,3], body_pose [n,21,3] (axis-angle, radians),
    euler_deg [n,21,3] (the clipped Euler angles) and the family name per row."""
    names = sorted(family_weights)
    weights = np.array([family_weights[k] for k in names], dtype=float)
    choice = rng.choice(len(names), size=n, p=weights / weights.sum())
    euler = np.zeros((n, len(BODY_JOINTS), 3))
    orient = np.zeros((n, 3))
    for k, name in enumerate(names):
        rows = np.flatnonzero(choice == k)
        if rows.size == 0:
            continue
        e, o = FAMILIES[name](rng, rows.size)
        flip = rng.random(rows.size) < 0.5
        e[flip] = mirror_euler(e[flip])
        euler[rows], orient[rows] = e, o
    euler += rng.normal(0.0, noise_deg, euler.shape)
    limits = joint_limits_deg()
    euler = np.clip(euler, limits[..., 0], limits[..., 1])
    body_pose = euler_to_axis_angle(euler)
    return orient, body_pose, euler, np.array(names, dtype=object)[choice]


def euler_to_axis_angle(euler_deg: np.ndarray) -> np.ndarray:
    """[..., 21, 3] per-joint Euler degrees (each joint in its own order) -> axis-angle radians."""
    rad = torch.as_tensor(np.deg2rad(euler_deg))
    rots = [euler_to_matrix(rad[..., j, :], euler_order(name)) for j, name in enumerate(BODY_JOINTS)]
    return matrix_to_axis_angle(torch.stack(rots, dim=-3)).numpy()


def axis_angle_to_euler(body_pose: np.ndarray) -> np.ndarray:
    rot = axis_angle_to_matrix(torch.as_tensor(body_pose, dtype=torch.float64))
    eul = [matrix_to_euler(rot[..., j, :, :], euler_order(name)) for j, name in enumerate(BODY_JOINTS)]
    return np.rad2deg(torch.stack(eul, dim=-2).numpy())


def within_limits(body_pose: np.ndarray, tol_deg: float = 0.5) -> np.ndarray:
    """Per-row bool: every joint's Euler angles inside the anatomical limits (with tolerance)."""
    euler = axis_angle_to_euler(body_pose)
    lim = joint_limits_deg()
    ok = (euler >= lim[..., 0] - tol_deg) & (euler <= lim[..., 1] + tol_deg)
    return ok.all(axis=(-1, -2))
