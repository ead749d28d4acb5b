"""AMASS-style folders: good files load, each kind of bad file is named with its key."""

import numpy as np
import pytest

from dreamer_core.errors import PoseFileError
from dreamer_core.poses.amass import load_amass_folder, read_amass_file


def good_poses(frames: int = 20, width: int = 156, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (frames, width))


def test_poses_and_split_formats(tmp_path):
    np.savez(tmp_path / "a.npz", poses=good_poses(), betas=np.zeros(16), mocap_framerate=120.0)
    p = good_poses(10, 156, 1)
    np.savez(tmp_path / "b.npz", root_orient=p[:, :3], pose_body=p[:, 3:66])
    (tmp_path / "sub").mkdir()
    np.savez(tmp_path / "sub" / "c.npz", poses=good_poses(8, 72, 2))
    out = load_amass_folder(tmp_path, stride=2, on_error="fail")
    assert out.body_pose.shape == (10 + 5 + 4, 21, 3)
    assert out.refs[0] == "a.npz:0" and out.refs[10] == "b.npz:0" and out.refs[-1] == "sub/c.npz:6"
    assert np.linalg.norm(out.body_pose, axis=-1).max() <= np.pi + 1e-6


def test_zup_roots_become_upright():
    # AMASS stores an upright body as a +90 degree rotation about X (Z-up world).
    import tempfile
    from pathlib import Path

    poses = np.zeros((1, 156))
    poses[0, 0] = np.pi / 2
    with tempfile.TemporaryDirectory() as d:
        np.savez(Path(d) / "x.npz", poses=poses)
        go, _ = read_amass_file(Path(d) / "x.npz", 1, zup=True)
    assert np.abs(go).max() < 1e-6


BAD_CASES = {
    "nan": (lambda: {"poses": np.where(np.arange(156) == 7, np.nan, good_poses())}, "NaN"),
    "wrong_width": (lambda: {"poses": good_poses(width=100)}, "'poses' has shape"),
    "wrong_split": (lambda: {"root_orient": np.zeros((5, 3)), "pose_body": np.zeros((5, 60))}, "'pose_body'"),
    "frames_mismatch": (lambda: {"root_orient": np.zeros((5, 3)), "pose_body": np.zeros((4, 63))}, "frames"),
    "no_keys": (lambda: {"trans": np.zeros((5, 3))}, "no pose arrays"),
    "degrees": (lambda: {"poses": good_poses() * 100}, "radians"),
    "object": (lambda: {"poses": np.array([good_poses()], dtype=object)}, "plain-array"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_named_with_key(tmp_path, case):
    make, message = BAD_CASES[case]
    np.savez(tmp_path / f"{case}.npz", **make())
    with pytest.raises(PoseFileError, match=message) as err:
        read_amass_file(tmp_path / f"{case}.npz", 1)
    assert f"{case}.npz" in str(err.value)


def test_truncated_file(tmp_path):
    np.savez(tmp_path / "t.npz", poses=good_poses())
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(PoseFileError, match="t.npz"):
        read_amass_file(tmp_path / "t.npz", 1)


def test_skip_or_fail_policy(tmp_path):
    np.savez(tmp_path / "good.npz", poses=good_poses())
    np.savez(tmp_path / "bad.npz", poses=good_poses(width=10))
    out = load_amass_folder(tmp_path, 1, on_error="skip")
    assert len(out.refs) == 20 and len(out.errors) == 1 and "bad.npz" in out.errors[0]
    with pytest.raises(PoseFileError, match="bad.npz"):
        load_amass_folder(tmp_path, 1, on_error="fail")


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(PoseFileError, match="not a folder"):
        load_amass_folder(tmp_path / "nope", 1, "skip")
    with pytest.raises(PoseFileError, match="no .npz"):
        load_amass_folder(tmp_path, 1, "skip")
