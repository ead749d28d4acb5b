"""Rendering real anny bodies: labels agree with pixels, PNCC is the barycentric blend of
canonical coordinates, and appearance is reproducible."""

import numpy as np
import pytest
import torch

from dreamer_core.bodies.skeleton import PART_NAMES
from dreamer_core.datasets.labels import keypoints_2d
from dreamer_core.poses.anatomical import FAMILIES, sample_anatomical
from dreamer_core.render.appearance import sample_appearance
from dreamer_core.render.cameras import CameraSampling, sample_camera
from dreamer_core.render.renderer import BodyRenderer

CFG = CameraSampling((800.0, 1600.0), 1000, (3.0, 6.0), 10.0, 0.1, 32.0, 96)


@pytest.fixture(scope="module")
def renderer(anny_body):
    return BodyRenderer(anny_body)


@pytest.fixture(scope="module")
def posed(anny_body):
    go, bp, _, _ = sample_anatomical(12, {k: 1.0 for k in FAMILIES}, 8.0, np.random.default_rng(3))
    with torch.no_grad():
        out = anny_body.forward({"global_orient": torch.as_tensor(go, dtype=torch.float32),
                                 "body_pose": torch.as_tensor(bp, dtype=torch.float32)})  # fmt: skip
    return out.vertices.numpy(), out.joints.numpy()


def test_visible_keypoints_land_on_the_mask(renderer, posed):
    verts, joints = posed
    rng = np.random.default_rng(0)
    on, total = 0, 0
    for v, j in zip(verts, joints, strict=True):
        cam = sample_camera(v, rng, CFG)
        out = renderer.render(v, cam, supersample=2)
        kp = keypoints_2d(j, cam, out.depth)
        vis = kp[:17][kp[:17, 2] == 2]
        on += int((out.mask[vis[:, 1].astype(int), vis[:, 0].astype(int)] > 0).sum())
        total += len(vis)
        assert (kp[:, 2] > 0).all()  # the crop contains the whole body
    assert total > 100 and on / total > 0.97


def test_pncc_is_barycentric_blend_of_canonical_coordinates(renderer, posed):
    v = posed[0][0]
    cam = sample_camera(v, np.random.default_rng(1), CFG)
    out = renderer.render(v, cam, supersample=1)
    hits = renderer.cast(v, cam, 1)
    m = hits.mask
    tri = renderer.faces[hits.face[m]]
    expected = (renderer.pncc[tri] * hits.bary[m][..., None]).sum(1)
    assert np.abs(out.control[m].astype(float) - expected * 255).max() <= 0.5 + 1e-6
    assert (out.control[~m] == 0).all()  # black background
    # Left and right differ: the canonical x channel is high on the body's left hand.
    x = renderer.pncc[:, 0]
    left, right = (
        renderer.part_labels == PART_NAMES.index("left_wrist"),
        renderer.part_labels == PART_NAMES.index("right_wrist"),
    )
    assert x[left].min() > 0.7 and x[right].max() < 0.3


def test_supersampling_antialiases_edges_and_depth_is_metric(renderer, posed):
    v = posed[0][1]
    cam = sample_camera(v, np.random.default_rng(2), CFG)
    out = renderer.render(v, cam, supersample=3)
    partial = ((out.mask > 0) & (out.mask < 255)).sum()
    assert partial > 50  # soft silhouette
    on = out.mask == 255
    z = cam.to_camera(v)[:, 2]
    assert z.min() - 0.01 <= out.depth[on].min() and out.depth[on].max() <= z.max() + 0.01


def test_part_ids_follow_the_surface(renderer, posed):
    v = posed[0][2]
    cam = sample_camera(v, np.random.default_rng(3), CFG)
    out = renderer.render(v, cam, supersample=2)
    ids = np.unique(out.parts)
    assert 0 in ids and PART_NAMES.index("head") + 1 in ids and len(ids) > 8
    assert ((out.parts > 0) == (out.mask > 0))[out.mask == 255].all()


def test_reference_render_is_reproducible_and_composited(renderer, posed):
    v = posed[0][3]
    cam = sample_camera(v, np.random.default_rng(4), CFG)
    a = renderer.render(v, cam, 2, sample_appearance(np.random.default_rng(9)))
    b = renderer.render(v, cam, 2, sample_appearance(np.random.default_rng(9)))
    c = renderer.render(v, cam, 2, sample_appearance(np.random.default_rng(10)))
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    assert a.image.shape == (96, 96, 3) and a.image.std() > 10
    # Off the body the image is the backdrop; on it, not black like the control image.
    assert a.image[a.mask == 255].mean() > 10
