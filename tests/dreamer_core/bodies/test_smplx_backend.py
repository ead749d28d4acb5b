"""The smplx backend against calling smplx directly, and against anny on a shared skeleton."""

import pickle

import numpy as np
import pytest
import smplx
import torch
from smplx.utils import Struct

from dreamer_core.bodies import load_body_model
from dreamer_core.bodies.skeleton import JOINT_NAMES, SKELETON_SLICE
from dreamer_core.config import BodyModelSettings
from dreamer_core.errors import BodyModelFilesError, ConfigError
from dreamer_core.poses.anatomical import FAMILIES, sample_anatomical
from tests.helpers.synthetic_smpl import smpl_arrays, vertex_ids_for


def random_params(n: int, seed: int, num_betas: int = 10):
    go, bp, _, _ = sample_anatomical(n, {k: 1.0 for k in FAMILIES}, 8.0, np.random.default_rng(seed))
    g = torch.Generator().manual_seed(seed)
    return {
        "global_orient": torch.as_tensor(go, dtype=torch.float32),
        "body_pose": torch.as_tensor(bp, dtype=torch.float32),
        "shape": torch.rand(n, num_betas, generator=g) * 2 - 1,
    }


def test_matches_smplx_called_directly(smpl_dir):
    body = load_body_model(BodyModelSettings(name="smpl", model_dir=str(smpl_dir)))
    params = random_params(6, seed=3)
    with torch.no_grad():
        ours = body.forward(params)
        with np.load(smpl_dir / "SMPL_NEUTRAL.npz") as data:
            arrays = {k: data[k] for k in data.files}
        ref_model = smplx.SMPL(model_path=None, data_struct=Struct(**arrays), vertex_ids=vertex_ids_for())
        ref = ref_model(
            betas=params["shape"],
            body_pose=torch.cat([params["body_pose"].reshape(6, -1), torch.zeros(6, 6)], dim=1),
            global_orient=params["global_orient"],
        )
    pelvis = ref.joints[:, :1]
    assert torch.allclose(ours.vertices, ref.vertices - pelvis, atol=1e-5)
    assert torch.allclose(ours.joints[:, SKELETON_SLICE], ref.joints[:, :22] - pelvis, atol=1e-5)
    assert ours.joints.shape[1] == len(JOINT_NAMES)
    # COCO left wrist is SMPL joint 20; the nose is the configured vertex.
    assert torch.allclose(ours.joints[:, JOINT_NAMES.index("left_wrist")], ref.joints[:, 20] - pelvis[:, 0], atol=1e-5)
    nose = vertex_ids_for()["nose"]
    assert torch.allclose(ours.joints[:, 0], ref.vertices[:, nose] - pelvis[:, 0], atol=1e-5)


def test_same_pose_same_skeleton_as_anny(smpl_dir, anny_body):
    """Both backends interpret the shared pose convention identically: on a SMPL model built
    on anny's T-pose skeleton, every skeleton joint lands in the same place for random poses."""
    smpl = load_body_model(BodyModelSettings(name="smpl", model_dir=str(smpl_dir)))
    params = random_params(16, seed=5)
    params.pop("shape")
    with torch.no_grad():
        a = anny_body.forward(params).joints[:, SKELETON_SLICE]
        s = smpl.forward(params).joints[:, SKELETON_SLICE]
    err_mm = (a - s).norm(dim=-1).max().item() * 1000
    assert err_mm < 2.0, f"skeletons disagree by up to {err_mm:.2f} mm"


def test_part_labels_and_faces(smpl_dir):
    body = load_body_model(BodyModelSettings(name="smpl", model_dir=str(smpl_dir)))
    assert body.part_labels.max() < 22 and body.faces.shape[1] == 3
    assert body.num_shape_params == 10


def test_missing_folder_lists_expected_files(tmp_path):
    with pytest.raises(BodyModelFilesError) as err:
        load_body_model(BodyModelSettings(name="smplx", model_dir=str(tmp_path)))
    msg = str(err.value)
    assert "SMPLX_NEUTRAL.npz" in msg and str(tmp_path) in msg and "allow_pickle_models" in msg
    with pytest.raises(ConfigError, match="model_dir"):
        load_body_model(BodyModelSettings(name="smpl", model_dir=""))


def test_pickle_needs_explicit_opt_in(tmp_path, smpl_dir):
    with np.load(smpl_dir / "SMPL_NEUTRAL.npz") as data:
        arrays = {k: data[k] for k in data.files}
    with open(tmp_path / "SMPL_NEUTRAL.pkl", "wb") as fh:
        pickle.dump(arrays, fh)
    (tmp_path / "vertex_ids.json").write_text((smpl_dir / "vertex_ids.json").read_text())
    with pytest.raises(BodyModelFilesError, match="allow_pickle_models"):
        load_body_model(BodyModelSettings(name="smpl", model_dir=str(tmp_path)))
    body = load_body_model(BodyModelSettings(name="smpl", model_dir=str(tmp_path), allow_pickle_models=True))
    assert body.model_file.suffix == ".pkl"


def test_npz_with_pickled_objects_is_refused(tmp_path, smpl_dir):
    with np.load(smpl_dir / "SMPL_NEUTRAL.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["J_regressor"] = np.array([arrays["J_regressor"]], dtype=object)
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **arrays)
    with pytest.raises(BodyModelFilesError, match="without unpickling"):
        load_body_model(BodyModelSettings(name="smpl", model_dir=str(tmp_path)))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.pop("weights"), "missing arrays"),
        (lambda a: a.update(weights=a["weights"][:, :10]), "'weights' has shape"),
        (lambda a: a.update(v_template=a["v_template"] * np.nan), "NaN"),
    ],
)
def test_wrong_model_arrays(tmp_path, mutate, message):
    arrays = smpl_arrays(np.random.default_rng(0).normal(size=(24, 3)))
    mutate(arrays)
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **arrays)
    with pytest.raises(BodyModelFilesError, match=message):
        load_body_model(BodyModelSettings(name="smpl", model_dir=str(tmp_path)))


def test_corrupt_model_file(tmp_path):
    (tmp_path / "smpl").mkdir()
    (tmp_path / "smpl" / "SMPL_NEUTRAL.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(BodyModelFilesError, match="SMPL_NEUTRAL.npz"):
        load_body_model(BodyModelSettings(name="smpl", model_dir=str(tmp_path)))


def test_bedlam_export_reproduces_the_camera_frame_mesh(smpl_dir):
    """SMPL's own forward pass on the exported (pose_cam, shape, trans_cam) lands every vertex
    where our labels put it in the camera frame: the exported translation accounts for SMPL
    rotating about its shape-dependent pelvis."""
    from scipy.spatial.transform import Rotation

    from dreamer_core.datasets.labels import make_labels
    from dreamer_core.filters.bedlam import bedlam_arrays
    from dreamer_core.render.cameras import Camera

    body = load_body_model(BodyModelSettings(name="smpl", model_dir=str(smpl_dir)))
    params = random_params(3, seed=8)
    with torch.no_grad():
        ours = body.forward(params)
    labels, expected = [], []
    for i in range(3):
        cam = Camera(np.array([[500.0, 0, 32], [0, 500.0, 32], [0, 0, 1]]),
                     Rotation.random(random_state=i).as_matrix(), np.array([0.1, -0.2, 4.0 + i]), 64, 64)  # fmt: skip
        labels.append(make_labels(body_model="smpl", params={k: v[i].numpy() for k, v in params.items()},
                                  joints_world=ours.joints[i].numpy(), camera=cam, depth=np.zeros((64, 64)),
                                  mask=np.full((64, 64), 255, np.uint8), seed=0, pose_id=str(i)))  # fmt: skip
        expected.append(cam.to_camera(ours.vertices[i].numpy()))
    pelvis = body.native_pelvis(params["shape"]).numpy()
    out = bedlam_arrays(labels, ["a", "b", "c"], pelvis)
    with np.load(smpl_dir / "SMPL_NEUTRAL.npz") as data:
        arrays = {k: data[k] for k in data.files}
    ref_model = smplx.SMPL(model_path=None, data_struct=Struct(**arrays), vertex_ids=vertex_ids_for())
    pose = torch.as_tensor(out["pose_cam"])
    with torch.no_grad():
        ref = ref_model(betas=torch.as_tensor(out["shape"]), global_orient=pose[:, :3],
                        body_pose=torch.cat([pose[:, 3:], torch.zeros(3, 6)], dim=1),
                        transl=torch.as_tensor(out["trans_cam"]))  # fmt: skip
    np.testing.assert_allclose(ref.vertices.numpy(), np.stack(expected), atol=1e-4)
