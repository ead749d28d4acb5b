"""The anny backend speaks the shared convention: SMPL frame, COCO-first joints, SMPL-style
axis-angle on the shared skeleton."""

import math

import numpy as np
import pytest
import torch

from dreamer_core.bodies.skeleton import BODY_JOINTS, JOINT_NAMES, PART_NAMES, SKELETON_JOINTS
from dreamer_core.errors import PipelineInputError

SK = {n: len(JOINT_NAMES) - len(SKELETON_JOINTS) + i for i, n in enumerate(SKELETON_JOINTS)}


def pose_with(**joints):
    bp = torch.zeros(1, 21, 3)
    for name, aa in joints.items():
        bp[0, BODY_JOINTS.index(name)] = torch.tensor(aa)
    return bp


def run(body, **params):
    with torch.no_grad():
        return body.forward(params)


def test_world_frame_and_joint_order(anny_body):
    out = run(anny_body, body_pose=torch.zeros(1, 21, 3))
    j = out.joints[0]
    assert out.joints.shape == (1, len(JOINT_NAMES), 3) and JOINT_NAMES[:2] == ("nose", "left_eye")
    assert torch.allclose(j[SK["pelvis"]], torch.zeros(3), atol=1e-5)  # pelvis at origin
    assert j[SK["head"], 1] > 0.5 and j[SK["left_ankle"], 1] < -0.6  # Y up
    assert j[JOINT_NAMES.index("nose"), 2] > 0.08  # faces +Z
    assert j[SK["left_shoulder"], 0] > 0.1 and j[SK["right_shoulder"], 0] < -0.1  # body left = +X
    assert out.vertices.shape == (1, anny_body.num_vertices, 3)
    assert anny_body.faces.shape[1] == 3 and anny_body.faces.max() < anny_body.num_vertices


def test_zero_pose_is_t_pose_and_canonical_is_a_pose(anny_body):
    j = run(anny_body, body_pose=torch.zeros(1, 21, 3)).joints[0]
    arm = j[SK["left_elbow"]] - j[SK["left_shoulder"]]
    assert abs(math.degrees(math.atan2(arm[1], arm[0]))) < 2.0  # horizontal upper arm
    canon = anny_body.canonical_vertices
    from dreamer_core.bodies.skeleton import a_pose_body_pose

    ja = run(anny_body, body_pose=torch.tensor([a_pose_body_pose()])).joints[0]
    arm = ja[SK["left_elbow"]] - ja[SK["left_shoulder"]]
    assert math.degrees(math.atan2(-arm[1], arm[0])) == pytest.approx(math.degrees(math.pi / 2.3), abs=2.0)
    assert canon.shape == (anny_body.num_vertices, 3)


def test_smpl_axis_conventions(anny_body):
    # Knee flexion (+x) moves the ankle backwards; hip flexion (-x) moves the knee forwards;
    # lowering the left arm is a negative rotation about Z.
    rest = run(anny_body, body_pose=torch.zeros(1, 21, 3)).joints[0]
    knee = run(anny_body, body_pose=pose_with(left_knee=[math.pi / 2, 0, 0])).joints[0]
    assert knee[SK["left_ankle"], 2] < rest[SK["left_ankle"], 2] - 0.3
    hip = run(anny_body, body_pose=pose_with(left_hip=[-math.pi / 2, 0, 0])).joints[0]
    assert hip[SK["left_knee"], 2] > 0.3
    arm = run(anny_body, body_pose=pose_with(left_shoulder=[0, 0, -math.pi / 2])).joints[0]
    assert arm[SK["left_elbow"], 1] < rest[SK["left_elbow"], 1] - 0.2


def test_global_orient_rotates_about_pelvis(anny_body):
    rest = run(anny_body, body_pose=torch.zeros(1, 21, 3))
    yaw = run(anny_body, global_orient=torch.tensor([[0.0, math.pi, 0.0]]), body_pose=torch.zeros(1, 21, 3))
    flipped = rest.vertices[0] * torch.tensor([-1.0, 1.0, -1.0])
    assert torch.allclose(yaw.vertices[0], flipped, atol=1e-4)
    moved = run(anny_body, transl=torch.tensor([[1.0, 2.0, 3.0]]))
    assert torch.allclose(
        moved.vertices[0] - rest.vertices[0], torch.tensor([1.0, 2.0, 3.0]).expand(rest.vertices.shape[1], 3), atol=1e-5
    )


def test_shape_changes_body(anny_body):
    tall = run(anny_body, shape=torch.tensor([[0.5, 0.5, 0.5, 0.5, 1.0, 0.5]]))
    short = run(anny_body, shape=torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.0, 0.5]]))
    height = lambda o: o.vertices[0, :, 1].max() - o.vertices[0, :, 1].min()  # noqa: E731
    assert height(tall) > height(short) + 0.15


def test_part_labels_cover_the_body(anny_body):
    labels = anny_body.part_labels
    assert labels.shape == (anny_body.num_vertices,)
    assert set(np.unique(labels)) == set(range(len(PART_NAMES)))
    # Vertices labelled left_wrist (the hand) sit left of the body's midline.
    verts = anny_body.canonical_vertices.numpy()
    assert verts[labels == PART_NAMES.index("left_wrist"), 0].min() > 0.15


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"body_pose": torch.zeros(1, 20, 3)}, "shape"),
        ({"body_pose": torch.full((1, 21, 3), float("nan"))}, "NaN"),
        ({"body_pose": torch.full((1, 21, 3), 3.0)}, "outside"),
        ({"shape": torch.full((1, 6), 1.5)}, "outside"),
        ({"betas": torch.zeros(1, 10)}, "unknown"),
        ({"body_pose": torch.zeros(2, 21, 3), "shape": torch.zeros(3, 6)}, "batch"),
    ],
)
def test_bad_parameters_are_refused(anny_body, params, message):
    with pytest.raises(PipelineInputError, match=message):
        anny_body.forward(params)


def test_skeleton_joints_match_the_full_forward_and_carry_gradients(anny_body):
    """The skinning-free skeleton pass (what HMR losses use) gives the full pass's skeleton joints
    exactly, with translation, and its gradients reach pose and shape."""
    g = torch.Generator().manual_seed(3)
    params = {"global_orient": torch.randn(4, 3, generator=g) * 0.5,
              "body_pose": torch.randn(4, 21, 3, generator=g) * 0.3,
              "shape": torch.rand(4, 6, generator=g), "transl": torch.randn(4, 3, generator=g)}  # fmt: skip
    with torch.no_grad():
        full = anny_body.forward(params).skeleton
    for p in params.values():
        p.requires_grad_(True)
    fast = anny_body.skeleton_joints(params)
    assert torch.allclose(fast, full, atol=1e-6)
    fast.pow(2).sum().backward()
    for name, p in params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
