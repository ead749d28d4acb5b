import numpy as np
import pytest

from dreamer_core.bodies.skeleton import BODY_JOINTS
from dreamer_core.poses.anatomical import FAMILIES, axis_angle_to_euler, sample_anatomical, within_limits
from dreamer_core.poses.limits import joint_limits_deg, mirror_euler

ALL = {k: 1.0 for k in FAMILIES}


def test_samples_stay_within_joint_limits():
    go, bp, euler, fam = sample_anatomical(3000, ALL, noise_deg=30.0, rng=np.random.default_rng(0))
    lim = joint_limits_deg()
    assert ((euler >= lim[..., 0]) & (euler <= lim[..., 1])).all()
    assert within_limits(bp).all()
    # The stored axis-angle decodes back to the clipped Euler angles.
    assert np.abs(axis_angle_to_euler(bp) - euler).max() < 1e-6
    assert np.linalg.norm(bp, axis=-1).max() <= np.pi + 1e-6
    assert go.shape == (3000, 3) and bp.shape == (3000, 21, 3)


def test_limits_reach_large_flexion():
    _, _, euler, fam = sample_anatomical(2000, {"crouching": 1.0}, 5.0, np.random.default_rng(1))
    knee = euler[:, BODY_JOINTS.index("left_knee"), 0]
    assert knee.max() > 110  # deep squats are possible (elbow and knee beyond 90 degrees)


def test_out_of_limit_pose_is_detected():
    bp = np.zeros((1, 21, 3))
    bp[0, BODY_JOINTS.index("left_knee")] = [-1.0, 0.0, 0.0]  # knee bent backwards
    assert not within_limits(bp)[0]


def test_deterministic_and_seed_sensitive():
    a = sample_anatomical(50, ALL, 8.0, np.random.default_rng(7))
    b = sample_anatomical(50, ALL, 8.0, np.random.default_rng(7))
    c = sample_anatomical(50, ALL, 8.0, np.random.default_rng(8))
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])


def test_family_weights_are_respected():
    _, _, _, fam = sample_anatomical(4000, {"walking": 3.0, "lying": 1.0}, 5.0, np.random.default_rng(2))
    share = (fam == "walking").mean()
    assert set(fam) == {"walking", "lying"} and share == pytest.approx(0.75, abs=0.03)


def test_mirror_is_an_involution_and_limits_are_symmetric():
    e = np.random.default_rng(0).normal(size=(5, 21, 3))
    assert np.allclose(mirror_euler(mirror_euler(e)), e)
    lim = joint_limits_deg()
    lo, hi = mirror_euler(lim[..., 0]), mirror_euler(lim[..., 1])
    # Mirroring the left limits gives the right limits (min/max swap on the negated axes).
    assert np.allclose(np.minimum(lo, hi), lim[..., 0]) and np.allclose(np.maximum(lo, hi), lim[..., 1])
