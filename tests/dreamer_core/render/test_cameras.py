import math

import numpy as np
import pytest

from dreamer_core.render.cameras import (
    BodyTooSmall,
    Camera,
    CameraSampling,
    intrinsics,
    look_at,
    multiview_rig,
    sample_camera,
)


def test_opencv_convention_front_camera():
    R, t = look_at(np.array([0.0, 1.0, 3.0]), np.array([0.0, 1.0, 0.0]))
    cam = Camera(intrinsics(100.0, 50.0, 50.0), R, t, 100, 100)
    # In front of a body facing +Z: its left (+X) appears on the image right, up appears up (smaller v).
    (u_left, v_left), (u_up, v_up) = cam.project(np.array([[0.5, 1.0, 0.0], [0.0, 1.5, 0.0]]))[0]
    assert u_left > 50 and abs(v_left - 50) < 1e-9
    assert v_up < 50 and abs(u_up - 50) < 1e-9
    assert np.allclose(cam.center, [0.0, 1.0, 3.0])
    assert np.allclose(R @ R.T, np.eye(3)) and np.linalg.det(R) == pytest.approx(1.0)


def test_crop_keeps_points_on_their_pixels():
    R, t = look_at(np.array([1.0, 0.5, 4.0]), np.zeros(3))
    full = Camera(intrinsics(900.0, 500.0, 500.0), R, t, 1000, 1000)
    crop = full.crop(420.0, 380.0, 160.0, 64)
    pts = np.random.default_rng(0).normal(0, 0.2, (50, 3))
    uv_full, z_full = full.project(pts)
    uv_crop, z_crop = crop.project(pts)
    assert np.allclose(uv_crop, (uv_full - [420.0, 380.0]) * 64 / 160.0)
    assert np.allclose(z_full, z_crop)
    # The crop camera's ray through a pixel centre passes through the matching full-frame point.
    origin, dirs = crop.rays()
    p = origin + dirs[10, 20] * 4.0
    assert np.allclose(full.project(p[None])[0][0], [420 + 20.5 * 160 / 64, 380 + 10.5 * 160 / 64], atol=1e-6)


def sampling(**kw):
    base = dict(focal_range=(800.0, 1600.0), frame_size=1000, distance_range=(3.0, 7.0), pitch_deg=10.0,
                margin=0.1, min_body_px=32.0, out_size=64)  # fmt: skip
    base.update(kw)
    return CameraSampling(**base)


def test_sampled_crop_frames_the_body_with_margin():
    verts = np.random.default_rng(1).uniform([-0.3, -0.9, -0.2], [0.3, 0.8, 0.2], (500, 3))
    rng = np.random.default_rng(2)
    for _ in range(20):
        cam = sample_camera(verts, rng, sampling())
        uv, z = cam.project(verts)
        assert (z > 0).all()
        lo, hi = uv.min(0), uv.max(0)
        side = (hi - lo).max()
        # The larger side spans 1/1.2 of the image; the body is centred; no roll (image up = world up).
        assert side == pytest.approx(64 / 1.2, rel=1e-6)
        assert np.allclose((lo + hi) / 2, 32.0, atol=1e-6)
        assert abs(cam.R[0, 1]) < 1e-9  # camera x has no vertical component: no roll


def test_too_small_bodies_are_refused():
    verts = np.random.default_rng(1).uniform(-0.1, 0.1, (100, 3))
    with pytest.raises(BodyTooSmall) as err:
        sample_camera(verts, np.random.default_rng(0), sampling(min_body_px=500.0))
    assert err.value.reason == "too_small"


def test_multiview_rig_geometry():
    target = np.array([0.0, 0.1, 0.0])
    cams = multiview_rig(8, 3.0, [0.0, 30.0], 80.0, 64, target)
    assert len(cams) == 16
    for cam in cams:
        assert np.linalg.norm(cam.center - target) == pytest.approx(3.0)
        uv, z = cam.project(target[None])
        assert np.allclose(uv, 32.0) and z[0] == pytest.approx(3.0)
    assert math.degrees(math.asin((cams[8].center - target)[1] / 3.0)) == pytest.approx(30.0)
