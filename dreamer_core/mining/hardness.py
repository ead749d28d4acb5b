"""Which poses does the generator get wrong? A gradient-boosted regressor from pose + shape
parameters to the OKS that round-1 generations of that pose reached (PoseDreamer's hard-pose
mining). Its held-out error is measured on poses it never saw, against predicting the mean.

The fitted model is never pickled: the folder keeps the training arrays and hyper-parameters,
and ``load`` refits (deterministic, a fraction of a second), so reading a model folder cannot
execute code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor

from dreamer_core.bodies.rotations import axis_angle_to_matrix
from dreamer_core.errors import PipelineInputError
from dreamer_core.io import load_npz, write_json_atomic, write_npz_atomic
from dreamer_core.poses.bank import stream


@dataclass(frozen=True)
class HardnessSettings:
    max_iter: int = 150
    learning_rate: float = 0.05
    max_leaf_nodes: int = 8
    min_samples_leaf: int = 10
    l2_regularization: float = 1.0
    heldout_fraction: float = 0.25
    bins: tuple[float, ...] = (0.8, 0.6, 0.4)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HardnessSettings:
        return cls(**{**d, "bins": tuple(d["bins"])})


def pose_features(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """[N, F]: global orientation, body pose (axis-angle, flattened), shape, plus the skeleton in
    the world frame (the bank's root-aligned joints rotated by the global orientation). The last
    block lets trees see "lying" or "arms over the head" without learning rotations from angles."""
    n = len(arrays["global_orient"])
    rot = axis_angle_to_matrix(torch.as_tensor(arrays["global_orient"], dtype=torch.float64)).numpy()
    world = np.einsum("nij,nkj->nki", rot, arrays["joints_root_aligned"].astype(np.float64))
    return np.concatenate(
        [arrays["global_orient"].reshape(n, -1), arrays["body_pose"].reshape(n, -1), arrays["shape"].reshape(n, -1),
         world.reshape(n, -1)], axis=1,
    ).astype(np.float32)  # fmt: skip


def heldout_poses(pose_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask: samples whose pose is held out (every sample of a pose falls on one side)."""
    u = {p: stream(seed, "hardness-split", str(p)).random() for p in np.unique(pose_ids)}
    return np.array([u[p] < fraction for p in pose_ids])


def _regressor(s: HardnessSettings, seed: int) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        max_iter=s.max_iter, learning_rate=s.learning_rate, max_leaf_nodes=s.max_leaf_nodes,
        min_samples_leaf=s.min_samples_leaf, l2_regularization=s.l2_regularization, early_stopping=False,
        random_state=seed,
    )  # fmt: skip


def difficulty(oks: np.ndarray, bins: tuple[float, ...]) -> np.ndarray:
    """Bin names per value: easy >= bins[0] > medium >= bins[1] > hard >= bins[2] > very_hard ..."""
    names = bin_names(bins)
    idx = np.searchsorted(-np.asarray(bins), -np.asarray(oks), side="left")
    return np.array(names)[idx]


def bin_names(bins: tuple[float, ...]) -> list[str]:
    base = ["easy", "medium", "hard", "very_hard"]
    names = base[: len(bins) + 1] if len(bins) < len(base) else [f"bin{i}" for i in range(len(bins) + 1)]
    return names


class HardnessModel:
    """Predicts the OKS a pose will reach (lower = harder)."""

    def __init__(self, settings: HardnessSettings, seed: int) -> None:
        self.settings, self.seed = settings, seed
        self.model = _regressor(settings, seed)
        self.features = self.targets = self.pose_ids = None

    def fit(self, features: np.ndarray, oks: np.ndarray, pose_ids: np.ndarray) -> dict[str, float]:
        """Fit on every sample after measuring on held-out poses; return held-out MAE / R^2 of the
        model and of the mean baseline."""
        ok = np.isfinite(oks)
        features, oks, pose_ids = features[ok], oks[ok], np.asarray(pose_ids)[ok]
        held = heldout_poses(pose_ids, self.settings.heldout_fraction, self.seed)
        if held.sum() < 2 or (~held).sum() < 2:
            raise PipelineInputError(
                f"hardness model: {len(oks)} scored samples over {len(np.unique(pose_ids))} poses leave "
                f"{int((~held).sum())} to train and {int(held.sum())} to test; add round-1 shards"
            )
        probe = _regressor(self.settings, self.seed).fit(features[~held], oks[~held])
        pred = probe.predict(features[held])
        base = np.full(held.sum(), oks[~held].mean())
        err, err0 = np.abs(pred - oks[held]), np.abs(base - oks[held])
        var = float(((oks[held] - oks[held].mean()) ** 2).sum())
        metrics = {
            "heldout_mae": float(err.mean()),
            "baseline_mae": float(err0.mean()),
            "heldout_r2": 1.0 - float(((pred - oks[held]) ** 2).sum()) / max(var, 1e-12),
            "heldout_spearman": _spearman(pred, oks[held]),
            "num_train_samples": int((~held).sum()),
            "num_heldout_samples": int(held.sum()),
            "num_poses": len(np.unique(pose_ids)),
        }
        self.heldout_pred, self.heldout_true = pred, oks[held]
        self.model.fit(features, oks)
        self.features, self.targets, self.pose_ids = features, oks, pose_ids
        return metrics

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.clip(self.model.predict(features), 0.0, 1.0)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        write_npz_atomic(folder / "training.npz", {"features": self.features, "oks": self.targets,
                                                   "pose_ids": self.pose_ids.astype(str)})  # fmt: skip
        write_json_atomic(folder / "config.json", {"class": "HardnessModel", "seed": self.seed,
                                                   "settings": asdict(self.settings)})  # fmt: skip

    @classmethod
    def load(cls, folder: str | Path) -> HardnessModel:
        folder = Path(folder)
        cfg_path = folder / "config.json"
        if not cfg_path.is_file() or not (folder / "training.npz").is_file():
            raise PipelineInputError(f"{folder}: no hardness model (config.json + training.npz); "
                                     "materialize hardness_model first")  # fmt: skip
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("class") != "HardnessModel":
            raise PipelineInputError(f"{cfg_path}: not a hardness model config")
        data = load_npz(folder / "training.npz")
        model = cls(HardnessSettings.from_dict(cfg["settings"]), cfg["seed"])
        model.model.fit(data["features"], data["oks"])
        model.features, model.targets, model.pose_ids = data["features"], data["oks"], data["pose_ids"]
        return model


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])
