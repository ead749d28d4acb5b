"""3DPW and EMDB files in their published layouts become HMR test samples: the crop's intrinsics
put every labelled point where it is in the crop's pixels, the root orientation is turned into
the camera frame correctly, and hostile or broken files get a clear error."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from dreamer_core.bodies.rotations import axis_angle_to_matrix
from dreamer_core.datasets.real import evenly, frames_3dpw, frames_emdb, frames_to_batch
from dreamer_core.datasets.safe_pickle import load_label_pickle
from dreamer_core.errors import PipelineInputError

W, H, N = 320, 240, 3
K = np.array([[300.0, 0, 160.0], [0, 300.0, 120.0], [0, 0, 1]])


def _camera(i: int) -> np.ndarray:
    ext = np.eye(4)
    ext[:3, :3] = axis_angle_to_matrix(torch.tensor([0.1 * i, 0.4 + 0.2 * i, 0.05], dtype=torch.float64)).numpy()
    ext[:3, 3] = [0.1 * i, 0.2, 4.0]
    return ext


def _scene(rng: np.random.Generator):
    poses = rng.normal(0, 0.3, (N, 72))
    joints = rng.normal(0, 0.4, (N, 24, 3))  # a person-sized cloud of world points
    cams = np.stack([_camera(i) for i in range(N)])
    return poses, joints, cams


def _image_with_marker(path, uv: np.ndarray) -> None:
    """Grey frame with a white 3x3 marker at the first labelled point."""
    im = np.full((H, W, 3), 60, np.uint8)
    u, v = int(uv[0]), int(uv[1])
    im[v - 1 : v + 2, u - 1 : u + 2] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(im).save(path, quality=100)


def _project(ext, pts):
    cam = pts @ ext[:3, :3].T + ext[:3, 3]
    uv = cam @ K.T
    return uv[:, :2] / uv[:, 2:]


@pytest.fixture()
def threedpw(tmp_path):
    rng = np.random.default_rng(0)
    poses, joints, cams = _scene(rng)
    seq = {"sequence": "downtown_test_00", "genders": ["m"], "poses": [poses], "betas": [rng.normal(0, 1, 10)],
           "trans": [np.zeros((N, 3))], "jointPositions": [joints.reshape(N, 72)], "cam_poses": cams,
           "cam_intrinsics": K, "campose_valid": [np.array([1, 0, 1])], "img_frame_ids": np.arange(N)}  # fmt: skip
    (tmp_path / "sequenceFiles" / "test").mkdir(parents=True)
    with open(tmp_path / "sequenceFiles" / "test" / "downtown_test_00.pkl", "wb") as fh:
        pickle.dump(seq, fh, protocol=2)
    for i in range(N):
        _image_with_marker(tmp_path / "imageFiles" / "downtown_test_00" / f"image_{i:05d}.jpg",
                           _project(cams[i], joints[i])[0])  # fmt: skip
    return tmp_path, poses, joints, cams


def test_3dpw_frames_become_consistent_crops(threedpw):
    root, poses, joints, cams = threedpw
    frames = frames_3dpw(root)
    assert [f.image.name for f in frames] == ["image_00000.jpg", "image_00002.jpg"]  # invalid camera pose skipped
    assert frames[0].gender == "male"
    batch = frames_to_batch(frames, 64, 10)
    assert batch["image"].shape == (2, 3, 64, 64) and batch["shape"].shape == (2, 10)
    for b, i in enumerate((0, 2)):
        # The crop intrinsics project the world points to where they are in the crop ...
        cam = joints[i] @ cams[i][:3, :3].T + cams[i][:3, 3]
        uv = cam @ batch["K"][b].double().numpy().T
        uv = uv[:, :2] / uv[:, 2:]
        assert uv.min() >= 0 and uv.max() <= 64  # the crop holds the whole person
        img = batch["image"][b].mean(0).numpy()
        peak = np.unravel_index(img.argmax(), img.shape)[::-1]
        assert np.abs(np.array(peak) + 0.5 - uv[0]).max() <= 1.5  # ... and the marker is there
        # ... and the camera-frame root orientation is the camera rotation after the world one.
        want = cams[i][:3, :3] @ axis_angle_to_matrix(torch.from_numpy(poses[i, :3])).numpy()
        got = axis_angle_to_matrix(batch["global_orient_cam"][b].double()).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
        np.testing.assert_allclose(batch["body_pose"][b].numpy(), poses[i, 3:66].reshape(21, 3), atol=1e-6)


def test_emdb_frames(tmp_path):
    rng = np.random.default_rng(1)
    poses, joints, cams = _scene(rng)
    seq = tmp_path / "P1" / "14_outdoor_climb"
    kp2d = np.stack([_project(cams[i], joints[i]) for i in range(N)])
    data = {"gender": "female", "emdb1": True, "n_frames": N, "good_frames_mask": np.array([True, True, False]),
            "smpl": {"poses_root": poses[:, :3], "poses_body": poses[:, 3:], "betas": rng.normal(0, 1, 10),
                     "trans": np.zeros((N, 3))},
            "camera": {"intrinsics": K, "extrinsics": cams, "width": W, "height": H}, "kp2d": kp2d}  # fmt: skip
    seq.mkdir(parents=True)
    with open(seq / "P1_14_outdoor_climb_data.pkl", "wb") as fh:
        pickle.dump(data, fh, protocol=2)
    for i in range(N):
        _image_with_marker(seq / "images" / f"{i:05d}.jpg", kp2d[i, 0])
    frames = frames_emdb(tmp_path)
    assert len(frames) == 2 and frames[0].gender == "female"
    batch = frames_to_batch(frames, 32, 10)
    np.testing.assert_allclose(batch["body_pose"][1].numpy(), poses[1, 3:66].reshape(21, 3), atol=1e-6)
    assert len(evenly(frames * 5, 4)) == 4


def test_hostile_and_broken_inputs(threedpw, tmp_path):
    root = threedpw[0]

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(PipelineInputError, match="system is not allowed"):
        load_label_pickle(bad)
    with pytest.raises(PipelineInputError, match="no 3DPW sequence files"):
        frames_3dpw(root, "validation")
    frames = frames_3dpw(root)
    frames[0].image.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(PipelineInputError, match="unreadable or truncated"):
        frames_to_batch(frames, 32, 10)
    frames[1].image.unlink()
    with pytest.raises(PipelineInputError, match="image missing"):
        frames_to_batch(frames[1:], 32, 10)
    seq = root / "sequenceFiles" / "test" / "downtown_test_00.pkl"
    d = load_label_pickle(seq)
    d["poses"] = [np.full((N, 72), np.nan)]
    seq.write_bytes(pickle.dumps(d, protocol=2))
    with pytest.raises(PipelineInputError, match=r"poses\[0\]: holds NaN"):
        frames_3dpw(root)


def test_training_labels_follow_the_render_conventions(threedpw, smpl_dir):
    """With the true parameters as the prediction, every HMR loss is zero: the real labels mean
    what our render labels mean (camera-frame joints = body(camera-frame parameters) + translation)."""
    from dreamer_core.bodies import load_body_model
    from dreamer_core.config import BodyModelSettings
    from dreamer_core.datasets.real import frames_to_training_batch, parse_real_source
    from dreamer_core.hmr.camera import translation_to_weak_perspective
    from dreamer_core.hmr.losses import hmr_losses

    root = threedpw[0]
    body = load_body_model(BodyModelSettings(name="smpl", model_dir=str(smpl_dir), gender="neutral", num_betas=10))
    batch = frames_to_training_batch(frames_3dpw(root), 64, body)
    assert (batch["keypoints_2d"][..., 2] == 2).any()
    rot = axis_angle_to_matrix(torch.cat([batch["global_orient_cam"][:, None], batch["body_pose"]], 1))
    truth = {
        "global_orient": batch["global_orient_cam"],
        "body_pose": batch["body_pose"],
        "shape": batch["shape"],
        "rotmat": rot,
        "cam": translation_to_weak_perspective(batch["transl_cam"], batch["K"][:, 0, 0], 64.0),
    }
    losses = hmr_losses(body, truth, {**batch, "image": batch["image"]})
    for name in ("joints_3d", "keypoints_2d", "rotations", "shape"):
        assert float(losses[name]) < 1e-4, (name, float(losses[name]))
    assert parse_real_source(str(root)) is None and parse_real_source(f"3dpw:{root}") == ("3dpw", root)
    with pytest.raises(PipelineInputError, match="is not a folder"):
        parse_real_source("3dpw:/nonexistent/3DPW")
