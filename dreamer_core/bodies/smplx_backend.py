"""SMPL / SMPL-X backend through the ``smplx`` package, from a user's model folder.

The official model files are licensed and cannot ship with us. We read them without unpickling:
``.npz`` files are loaded with ``allow_pickle=False`` and handed to ``smplx`` through its
``data_struct`` argument (``smplx`` itself would ``pickle.load`` even an ``.npz``). The official
``.pkl`` files are accepted only when the user opts in (``allow_pickle_models: true``).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from dreamer_core.bodies.base import BodyModel, BodyOutput
from dreamer_core.bodies.skeleton import COCO17, FOOT_KEYPOINTS
from dreamer_core.errors import BodyModelFilesError

MODEL_TYPES = ("smpl", "smplx")
GENDERS = ("neutral", "male", "female")

# Arrays each format needs (name -> number of dimensions). smplx's own format.
REQUIRED_ARRAYS: dict[str, dict[str, int]] = {
    "smpl": {"v_template": 2, "f": 2, "J_regressor": 2, "weights": 2, "kintree_table": 2,
             "shapedirs": 3, "posedirs": 3},
    "smplx": {"v_template": 2, "f": 2, "J_regressor": 2, "weights": 2, "kintree_table": 2,
              "shapedirs": 3, "posedirs": 3, "hands_componentsl": 2, "hands_componentsr": 2,
              "hands_meanl": 1, "hands_meanr": 1, "lmk_faces_idx": 1, "lmk_bary_coords": 2},
}  # fmt: skip
NUM_JOINTS = {"smpl": 24, "smplx": 55}

# Shared COCO-17 from smplx joints (index) or vertex ids (name in smplx's vertex_ids table).
_COCO_SOURCES: dict[str, int | str] = {
    "nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear", "right_ear": "rear",
    "left_shoulder": 16, "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19,
    "left_wrist": 20, "right_wrist": 21, "left_hip": 1, "right_hip": 2,
    "left_knee": 4, "right_knee": 5, "left_ankle": 7, "right_ankle": 8,
}  # fmt: skip
_FOOT_SOURCES = {
    "left_big_toe": "LBigToe", "left_small_toe": "LSmallToe", "left_heel": "LHeel",
    "right_big_toe": "RBigToe", "right_small_toe": "RSmallToe", "right_heel": "RHeel",
}  # fmt: skip


def expected_files(model_dir: Path, model_type: str, gender: str, allow_pickle: bool) -> list[Path]:
    stem = f"{model_type.upper()}_{gender.upper()}"
    exts = (".npz", ".pkl") if allow_pickle else (".npz",)
    return [d / f"{stem}{ext}" for d in (model_dir / model_type, model_dir) for ext in exts]


def load_model_arrays(path: Path, model_type: str) -> dict[str, np.ndarray]:
    """Read and check a model file; ``.pkl`` only reaches here after the user opted in."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        else:
            import pickle

            with open(path, "rb") as fh:
                raw = pickle.load(fh, encoding="latin1")  # noqa: S301 - explicit user opt-in
            arrays = {k: _dense(v) for k, v in raw.items()}
    except ValueError as exc:
        raise BodyModelFilesError(
            f"{path}: cannot be read without unpickling ({exc}). Convert it to a plain-array .npz, "
            "or set body_model.allow_pickle_models: true if you trust the file."
        ) from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise BodyModelFilesError(f"{path}: unreadable model file ({exc})") from exc
    missing = [k for k in REQUIRED_ARRAYS[model_type] if k not in arrays]
    if missing:
        raise BodyModelFilesError(
            f"{path}: missing arrays {missing}; a {model_type.upper()} file needs {sorted(REQUIRED_ARRAYS[model_type])}"
        )
    for k, ndim in REQUIRED_ARRAYS[model_type].items():
        if arrays[k].ndim != ndim:
            raise BodyModelFilesError(f"{path}: array {k!r} has {arrays[k].ndim} dimensions, expected {ndim}")
    v = arrays["v_template"].shape[0]
    j = NUM_JOINTS[model_type]
    checks = {
        "v_template": (v, 3), "weights": (v, j), "J_regressor": (j, v), "kintree_table": (2, j),
    }  # fmt: skip
    for k, shape in checks.items():
        if arrays[k].shape != shape:
            raise BodyModelFilesError(f"{path}: array {k!r} has shape {arrays[k].shape}, expected {shape}")
    for k in ("v_template", "shapedirs", "posedirs", "weights", "J_regressor"):
        if not np.isfinite(arrays[k]).all():
            raise BodyModelFilesError(f"{path}: array {k!r} contains NaN or inf")
    return arrays


def _dense(value: object) -> np.ndarray:
    if hasattr(value, "toarray"):
        return np.asarray(value.toarray())
    return np.asarray(value)


def load_vertex_ids(model_dir: Path, model_type: str) -> dict[str, int]:
    """smplx's keypoint vertex table, overridable by ``vertex_ids.json`` in the model folder."""
    from smplx.vertex_ids import vertex_ids

    table = dict(vertex_ids["smplh" if model_type == "smpl" else "smplx"])
    override = model_dir / "vertex_ids.json"
    if override.exists():
        table.update({k: int(v) for k, v in json.loads(override.read_text()).items()})
    return table


class SMPLXBody(BodyModel):
    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        model_type: str = "smplx",
        gender: str = "neutral",
        num_betas: int = 10,
        allow_pickle_models: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(device)
        if model_type not in MODEL_TYPES:
            raise BodyModelFilesError(f"body_model.name must be one of {MODEL_TYPES}, got {model_type!r}")
        if gender not in GENDERS:
            raise BodyModelFilesError(f"body_model.gender must be one of {GENDERS}, got {gender!r}")
        self.name = model_type
        model_dir = Path(model_dir).expanduser()
        candidates = expected_files(model_dir, model_type, gender, allow_pickle_models)
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            hint = (
                ""
                if allow_pickle_models
                else (" (an official .pkl is accepted only with body_model.allow_pickle_models: true)")
            )
            raise BodyModelFilesError(
                f"no {model_type.upper()} model file found in {model_dir}: expected one of "
                f"{[str(p) for p in candidates]}{hint}. Download the model from its official site and "
                "point body_model.model_dir at the folder that holds it."
            )
        self.model_file = found
        arrays = load_model_arrays(found, model_type)
        self._vertex_ids = load_vertex_ids(model_dir, model_type)
        v = arrays["v_template"].shape[0]
        bad = {k: i for k, i in self._vertex_ids.items() if not 0 <= i < v}
        if bad:
            raise BodyModelFilesError(
                f"{found}: keypoint vertex ids {bad} are out of range for {v} vertices; "
                f"put a vertex_ids.json next to the model file"
            )
        import smplx
        from smplx.utils import Struct

        num_betas = min(num_betas, arrays["shapedirs"].shape[-1])
        kwargs = dict(data_struct=Struct(**arrays), vertex_ids=self._vertex_ids, num_betas=num_betas)
        if model_type == "smpl":
            self.model = smplx.SMPL(model_path=None, **kwargs)
        else:
            self.model = smplx.SMPLX(model_path=None, use_pca=False, num_expression_coeffs=0, **kwargs)
        self.model = self.model.to(self.device).eval()
        self._num_betas = num_betas
        self._faces = torch.as_tensor(np.asarray(arrays["f"], dtype=np.int64), device=self.device)
        self._part_labels = self._parts(arrays["weights"], model_type)
        self._coco = [(s if isinstance(s, int) else self._vertex_ids[s]) for s in _COCO_SOURCES.values()]
        self._coco_is_joint = [isinstance(s, int) for s in _COCO_SOURCES.values()]
        self._foot_ids = torch.tensor([self._vertex_ids[_FOOT_SOURCES[n]] for n in FOOT_KEYPOINTS])
        assert list(_COCO_SOURCES) == list(COCO17)

    @staticmethod
    def _parts(weights: np.ndarray, model_type: str) -> np.ndarray:
        top = weights.argmax(axis=1)
        mapping = np.arange(NUM_JOINTS[model_type])
        if model_type == "smpl":
            mapping[22], mapping[23] = 20, 21  # hands -> wrists
        else:
            mapping[22:25] = 15  # jaw, eyes -> head
            mapping[25:40] = 20  # left fingers
            mapping[40:55] = 21  # right fingers
        return mapping[top].astype(np.int64)

    @property
    def faces(self) -> torch.Tensor:
        return self._faces

    @property
    def num_shape_params(self) -> int:
        return self._num_betas

    @property
    def shape_bounds(self) -> tuple[float, float]:
        return (-5.0, 5.0)

    @property
    def shape_default(self) -> float:
        return 0.0

    @property
    def part_labels(self) -> np.ndarray:
        return self._part_labels

    @torch.no_grad()
    def native_pelvis(self, shape: torch.Tensor) -> torch.Tensor:
        """[B, 3] pelvis of the model's own output at zero pose and translation: our world puts the
        pelvis at the origin, so exporting SMPL-native translations (BEDLAM .npz) subtracts this."""
        batch = shape.shape[0]
        z = shape.new_zeros
        pose = z(batch, 69 if self.name == "smpl" else 63)
        extra = {} if self.name == "smpl" else dict(jaw_pose=z(batch, 3), leye_pose=z(batch, 3),
                                                      reye_pose=z(batch, 3), left_hand_pose=z(batch, 45),
                                                      right_hand_pose=z(batch, 45), expression=z(batch, 0))  # fmt: skip
        out = self.model(betas=shape, body_pose=pose, global_orient=z(batch, 3), transl=z(batch, 3), **extra)
        return out.joints[:, 0]

    def _forward(self, global_orient: torch.Tensor, body_pose: torch.Tensor, shape: torch.Tensor) -> BodyOutput:
        batch = global_orient.shape[0]
        pose = body_pose.reshape(batch, -1)
        extra: dict[str, torch.Tensor] = {}
        if self.name == "smpl":
            pose = torch.cat([pose, pose.new_zeros(batch, 6)], dim=1)  # SMPL's two hand joints
        else:
            z = pose.new_zeros
            extra = dict(jaw_pose=z(batch, 3), leye_pose=z(batch, 3), reye_pose=z(batch, 3),
                         left_hand_pose=z(batch, 45), right_hand_pose=z(batch, 45),
                         expression=z(batch, 0))  # fmt: skip
        out = self.model(
            betas=shape, body_pose=pose, global_orient=global_orient,
            transl=pose.new_zeros(batch, 3), return_verts=True, **extra,
        )  # fmt: skip
        pelvis = out.joints[:, :1]
        vertices = out.vertices - pelvis
        joints = out.joints - pelvis
        coco = torch.stack(
            [joints[:, i] if is_j else vertices[:, i] for i, is_j in zip(self._coco, self._coco_is_joint, strict=True)],
            dim=1,
        )
        feet = vertices[:, self._foot_ids.to(vertices.device)]
        return BodyOutput(vertices=vertices, joints=torch.cat([coco, feet, joints[:, :22]], dim=1))
