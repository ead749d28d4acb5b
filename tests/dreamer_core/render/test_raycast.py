"""Ray-cast geometry against analytic answers: plane and sphere depth, barycentrics, two views."""

import numpy as np
import pytest
import trimesh

from dreamer_core.render.cameras import Camera, intrinsics, look_at, multiview_rig
from dreamer_core.render.raycast import Raycaster, downsample


def camera(eye, target=(0.0, 0.0, 0.0), size=64, focal=80.0):
    R, t = look_at(np.asarray(eye, float), np.asarray(target, float))
    return Camera(intrinsics(focal, size / 2, size / 2), R, t, size, size)


def test_plane_depth_is_constant_and_exact():
    # A 10 m square at z = 0 seen head-on from z = 2.5: every pixel's camera-frame depth is 2.5.
    v = np.array([[-5, -5, 0], [5, -5, 0], [5, 5, 0], [-5, 5, 0]], float)
    rc = Raycaster(np.array([[0, 1, 2], [0, 2, 3]]))
    rc.set_vertices(v)
    hits = rc.cast(camera([0, 0, 2.5]))
    assert hits.mask.all()
    assert np.allclose(hits.depth, 2.5, atol=1e-5)
    # Tilted plane: depth follows the analytic ray-plane intersection.
    tilt = camera([1.0, 0.5, 2.0])
    hits = rc.cast(tilt)
    origin, dirs = tilt.rays()
    t = -origin[2] / dirs[..., 2]
    expected = t * (dirs @ tilt.R[2])
    assert np.allclose(hits.depth, expected, rtol=1e-5)


def test_sphere_depth_matches_analytic():
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=0.5)
    rc = Raycaster(sphere.faces)
    rc.set_vertices(sphere.vertices)
    cam = camera([0, 0, 3.0], size=96, focal=120.0)
    hits = rc.cast(cam)
    origin, dirs = cam.rays()
    # |o + t d|^2 = r^2, nearest root.
    b = dirs @ origin
    disc = b**2 - (origin @ origin - 0.25)
    analytic_mask = disc > 0
    t = -b - np.sqrt(np.where(analytic_mask, disc, 0))
    expected = t * (dirs @ cam.R[2])
    inner = analytic_mask & hits.mask
    assert (hits.mask != analytic_mask).mean() < 0.01  # only silhouette pixels may differ
    assert np.abs(hits.depth[inner] - expected[inner]).max() < 2e-3  # tessellation error of the icosphere


def test_barycentrics_reconstruct_hit_points():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    rc = Raycaster(sphere.faces)
    rc.set_vertices(sphere.vertices)
    hits = rc.cast(camera([0.3, 0.2, 2.0]))
    m = hits.mask
    tri = sphere.vertices[sphere.faces[hits.face[m]]]
    assert np.allclose((tri * hits.bary[m][..., None]).sum(1), hits.points[m], atol=1e-5)
    assert np.allclose(hits.bary[m].sum(-1), 1.0, atol=1e-6) and (hits.bary[m] >= -1e-6).all()


def test_point_seen_by_two_rig_cameras_projects_where_the_rig_says():
    box = trimesh.creation.box(extents=(0.6, 1.2, 0.4))
    rc = Raycaster(box.faces)
    rc.set_vertices(box.vertices)
    cams = multiview_rig(8, 3.0, [15.0], 60.0, 64, np.zeros(3))
    a, b = cams[0], cams[1]  # 45 degrees apart: both see the front face
    ha, hb = rc.cast(a), rc.cast(b)
    pts = ha.points[ha.mask]
    uv, z = b.project(pts)
    checked = 0
    for p, (u, v), d in zip(pts, uv, z, strict=True):
        i, j = int(v), int(u)
        if 0 <= i < 64 and 0 <= j < 64 and hb.mask[i, j] and abs(hb.depth[i, j] - d) < 0.02:
            checked += 1
            # The point b sees at that pixel is within a pixel footprint of the point a saw.
            assert np.linalg.norm(hb.points[i, j] - p) < 3.0 * d / 60.0
    assert checked > 200


def test_refit_follows_moved_vertices():
    v = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float)
    rc = Raycaster(np.array([[0, 1, 2], [0, 2, 3]]))
    rc.set_vertices(v)
    rc.set_vertices(v + [0, 0, 0.5])  # same topology: refit, not rebuild
    assert np.allclose(rc.cast(camera([0, 0, 2.5], size=8)).depth, 2.0, atol=1e-5)


def test_downsample_is_a_box_filter():
    x = np.arange(16, dtype=float).reshape(4, 4)
    assert np.allclose(downsample(x, 2), [[2.5, 4.5], [10.5, 12.5]])
    with pytest.raises(ValueError):
        downsample(np.zeros((5, 4)), 2)
