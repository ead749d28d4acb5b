"""Per-joint anatomical limits on the shared skeleton, as Euler XYZ ranges in degrees.

Axes are SMPL's world-aligned axes at the T-pose (X = body left, Y = up, Z = forward), rotation
R = Rz @ Ry @ Rx unless ``EULER_ORDER`` says otherwise. Left-side limits are written once;
right-side ones mirror them (y, z negated).
Joints not listed (none today) would be held at zero.
"""

from __future__ import annotations

import numpy as np

from dreamer_core.bodies.skeleton import BODY_JOINTS

# (x_min, x_max), (y_min, y_max), (z_min, z_max) in degrees.
_LEFT_AND_CENTRE: dict[str, tuple[tuple[float, float], ...]] = {
    "left_hip": ((-125, 30), (-40, 40), (-25, 50)),
    "left_knee": ((0, 150), (-5, 5), (-5, 5)),
    "left_ankle": ((-30, 45), (-20, 20), (-20, 20)),
    "left_foot": ((-30, 30), (-5, 5), (-5, 5)),
    "left_collar": ((-10, 10), (-20, 20), (-10, 25)),
    "left_shoulder": ((-70, 70), (-110, 45), (-95, 100)),
    "left_elbow": ((-20, 20), (-150, 0), (-5, 5)),
    "left_wrist": ((-45, 45), (-30, 30), (-60, 60)),
    "spine1": ((-20, 45), (-25, 25), (-20, 20)),
    "spine2": ((-15, 30), (-20, 20), (-15, 15)),
    "spine3": ((-15, 30), (-20, 20), (-15, 15)),
    "neck": ((-35, 45), (-45, 45), (-25, 25)),
    "head": ((-30, 30), (-35, 35), (-20, 20)),
}


# Euler order per joint (first-applied axis first). The middle axis must stay within +/- 90
# degrees for a unique decomposition, so it is the joint's smallest range (the arms' twist).
EULER_ORDER: dict[str, str] = {"shoulder": "yxz", "elbow": "yxz"}


def euler_order(joint: str) -> str:
    return EULER_ORDER.get(joint.removeprefix("left_").removeprefix("right_"), "xyz")


def _mirror(r: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    (x0, x1), (y0, y1), (z0, z1) = r
    return (x0, x1), (-y1, -y0), (-z1, -z0)


def joint_limits_deg() -> np.ndarray:
    """[21, 3, 2] (min, max) degrees per body joint and axis, in BODY_JOINTS order."""
    table = np.zeros((len(BODY_JOINTS), 3, 2))
    for i, name in enumerate(BODY_JOINTS):
        if name in _LEFT_AND_CENTRE:
            table[i] = _LEFT_AND_CENTRE[name]
        else:
            table[i] = _mirror(_LEFT_AND_CENTRE["left_" + name.removeprefix("right_")])
    return table


def mirror_euler(angles: np.ndarray) -> np.ndarray:
    """Mirror left<->right for [..., 21, 3] Euler angles (swap sides, negate y and z)."""
    out = angles.copy()
    index = {n: i for i, n in enumerate(BODY_JOINTS)}
    for i, name in enumerate(BODY_JOINTS):
        if name.startswith("left_"):
            j = index["right_" + name.removeprefix("left_")]
            out[..., i, :], out[..., j, :] = angles[..., j, :].copy(), angles[..., i, :].copy()
    out[..., 1:] *= -1
    return out
