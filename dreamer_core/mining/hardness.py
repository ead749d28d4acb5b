"""Which poses does the generator get wrong? A gradient-boosted regressor from pose features to the
OKS that round-1 generations of that pose reached (PoseDreamer's hard-pose mining).

Honesty rules, because the target is noisy (one or two samples per pose, whose OKS also moves
with camera and seed):

- Cross-fitting. Poses are split into ``folds`` groups (every sample of a pose in one fold); each
  pose seen in round 1 gets its prediction from the model fitted on the other folds. A model fitted
  on a pose and asked about it again mostly returns that pose's own noisy samples, so ranking seen
  poses by in-sample predictions would draw the poses that happened to score low, not the ones
  that are hard. Poses never seen in round 1 are out of sample for the model fitted on everything.
- Held-out metrics (MAE, R^2, Spearman) come from those out-of-fold predictions and are reported
  next to the mean predictor's (the mean OKS of the training folds), so "the model beats the mean"
  is measured, not assumed.
- Targets are per-pose mean OKS weighted by sample count (the same squared loss as per-sample
  targets), so ``min_samples_leaf`` counts poses: a leaf cannot memorise one pose's samples.

The fitted model is never pickled: the folder keeps the training arrays and hyper-parameters,
and ``load`` refits (deterministic, a fraction of a second), so reading a model folder cannot
execute code.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import ConstantInputWarning, spearmanr
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, r2_score
from threadpoolctl import threadpool_limits

from dreamer_core.bodies.rotations import axis_angle_to_matrix
from dreamer_core.config import HardnessSettings
from dreamer_core.errors import PipelineInputError
from dreamer_core.io import load_npz, write_json_atomic, write_npz_atomic
from dreamer_core.mining.geometry import difficulty_features
from dreamer_core.seeds import stream

PREDICTIONS_FILE = "predictions.parquet"


def world_joints(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """[N, 22, 3] the bank's root-aligned skeleton rotated by the global orientation (world frame)."""
    rot = axis_angle_to_matrix(torch.as_tensor(arrays["global_orient"], dtype=torch.float64)).numpy()
    return np.einsum("nij,nkj->nki", rot, arrays["joints_root_aligned"].astype(np.float64))


def pose_features(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """[N, F]: global orientation, body pose (axis-angle, flattened), shape, the skeleton in the
    world frame, and difficulty cues (view-averaged self-occlusion, foreshortening, 2D limb
    crossings; joint-limit margins; see ``geometry``). The world skeleton lets trees see "lying" or
    "arms over the head" without learning rotations from angles; the cues name, in one column
    each, what makes a pose hard to draw and to detect."""
    n = len(arrays["global_orient"])
    world = world_joints(arrays)
    return np.concatenate(
        [arrays["global_orient"].reshape(n, -1), arrays["body_pose"].reshape(n, -1), arrays["shape"].reshape(n, -1),
         world.reshape(n, -1), difficulty_features(world, arrays["body_pose"])], axis=1,
    ).astype(np.float32)  # fmt: skip


def pose_folds(pose_ids: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index (0 .. folds - 1) per entry of ``pose_ids``: every sample of a pose lands in one
    fold. The distinct poses are shuffled by a seeded stream and dealt round-robin, so fold sizes
    differ by at most one pose (the folds depend on the whole set of poses: a new pose reshuffles
    them, which only changes which model scores a pose, never lets one score a pose it saw)."""
    uniq, inverse = np.unique(np.asarray(pose_ids).astype(str), return_inverse=True)
    order = stream(seed, "hardness-folds").permutation(len(uniq))
    fold_of = np.empty(len(uniq), dtype=np.int64)
    fold_of[order] = np.arange(len(uniq)) % folds
    return fold_of[inverse]


def per_pose_targets(features: np.ndarray, oks: np.ndarray, pose_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Scored samples collapsed to one row per pose (sorted by pose id): its features, mean OKS and
    sample count; plus, per scored sample, its OKS and its pose's row (``inverse``). Non-finite
    OKS (a failed detection) are left out."""
    oks = np.asarray(oks, dtype=np.float64)
    ok = np.isfinite(oks)
    ids = np.asarray(pose_ids).astype(str)[ok]
    uniq, first, inverse, count = np.unique(ids, return_index=True, return_inverse=True, return_counts=True)
    mean = np.bincount(inverse, weights=oks[ok], minlength=len(uniq)) / np.maximum(count, 1)
    return {"features": np.asarray(features)[ok][first], "oks": mean, "weights": count.astype(np.float64),
            "pose_ids": uniq, "sample_oks": oks[ok], "inverse": inverse}  # fmt: skip


def _regressor(s: HardnessSettings, seed: int) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        max_iter=s.max_iter, learning_rate=s.learning_rate, max_leaf_nodes=s.max_leaf_nodes,
        min_samples_leaf=s.min_samples_leaf, l2_regularization=s.l2_regularization, early_stopping=False,
        random_state=seed,
    )  # fmt: skip


def _fit(
    model: HistGradientBoostingRegressor, x: np.ndarray, y: np.ndarray, w: np.ndarray
) -> HistGradientBoostingRegressor:
    """Fit on one OpenMP thread: the same trees (and bytes downstream) whatever the process's thread
    count, and on a few thousand poses several times faster than threads competing for two cores."""
    with threadpool_limits(limits=1, user_api="openmp"):
        return model.fit(x, y, sample_weight=w)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (ties get average ranks); NaN when either side is constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return float(spearmanr(a, b).statistic)


def heldout_metrics(oks: np.ndarray, predicted: np.ndarray, baseline: np.ndarray) -> dict[str, float]:
    """Model vs mean predictor on the same held-out samples (the baseline of a sample is the mean
    OKS of the folds it was not in). The mean predictor's Spearman is undefined (a constant ranks
    nothing): any positive rank correlation is information the mean does not have."""
    return {
        "heldout_mae": float(mean_absolute_error(oks, predicted)),
        "baseline_mae": float(mean_absolute_error(oks, baseline)),
        "heldout_r2": float(r2_score(oks, predicted)),
        "baseline_r2": float(r2_score(oks, baseline)),
        "heldout_spearman": spearman(predicted, oks),
    }


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
    """Predicts the OKS a pose will reach (lower = harder); ``draw_scores`` is what round 2 ranks by."""

    def __init__(self, settings: HardnessSettings, seed: int) -> None:
        self.settings, self.seed = settings, seed
        self.model = _regressor(settings, seed)
        self.features = self.targets = self.weights = self.pose_ids = None
        self.folds = self.oof = self.baseline = None

    def fit(self, features: np.ndarray, oks: np.ndarray, pose_ids: np.ndarray) -> dict[str, Any]:
        """Cross-fit: per fold, fit on the other folds' poses and predict this fold's (out of fold);
        then fit on every pose. ``features`` / ``oks`` / ``pose_ids`` are per sample (a pose's rows
        share its features). Return the held-out metrics of the model and of the mean predictor."""
        k = self.settings.folds
        data = per_pose_targets(features, oks, pose_ids)
        x, y, w, ids = data["features"], data["oks"], data["weights"], data["pose_ids"]
        if len(ids) < 2 * k:
            raise PipelineInputError(
                f"hardness model: {int(w.sum())} scored samples over {len(ids)} poses are too few for "
                f"{k}-fold cross-fitting (at least {2 * k} poses); add round-1 shards or lower hardness_model.folds"
            )
        folds = pose_folds(ids, k, self.seed)
        oof, base = np.full(len(ids), np.nan), np.full(len(ids), np.nan)
        for f in range(k):
            test, train = folds == f, folds != f
            probe = _fit(_regressor(self.settings, self.seed), x[train], y[train], w[train])
            with threadpool_limits(limits=1, user_api="openmp"):
                oof[test] = np.clip(probe.predict(x[test]), 0.0, 1.0)
            base[test] = np.average(y[train], weights=w[train])
        _fit(self.model, x, y, w)
        self.features, self.targets, self.weights, self.pose_ids = x, y, w, ids
        self.folds, self.oof, self.baseline = folds, oof, base
        # Per-sample metrics: each scored sample against its pose's out-of-fold prediction.
        inv = data["inverse"]
        metrics: dict[str, Any] = heldout_metrics(data["sample_oks"], oof[inv], base[inv])
        metrics.update(
            heldout_pose_spearman=spearman(oof, y),  # what the round-2 ranking relies on
            beats_mean=bool(metrics["heldout_mae"] < metrics["baseline_mae"]),
            folds=k, num_samples=int(w.sum()), num_poses=len(ids),
        )  # fmt: skip
        return metrics

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The model fitted on every round-1 pose: out of sample only for poses it never saw."""
        with threadpool_limits(limits=1, user_api="openmp"):
            return np.clip(self.model.predict(features), 0.0, 1.0)

    def draw_scores(self, features: np.ndarray, pose_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predicted OKS, out-of-fold?) per row: a pose seen in round 1 gets its out-of-fold
        prediction, any other pose the full model's. Every score is out of sample."""
        ids = np.asarray(pose_ids).astype(str)
        pos = np.searchsorted(self.pose_ids, ids)
        seen = (pos < len(self.pose_ids)) & (self.pose_ids[np.minimum(pos, len(self.pose_ids) - 1)] == ids)
        scores = self.predict(features).astype(np.float64)
        scores[seen] = self.oof[pos[seen]]
        return scores, seen

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        write_npz_atomic(folder / "training.npz", {"features": self.features, "oks": self.targets,
                                                   "weights": self.weights, "pose_ids": self.pose_ids.astype(str),
                                                   "folds": self.folds, "oof": self.oof,
                                                   "baseline": self.baseline})  # fmt: skip
        write_json_atomic(folder / "config.json", {"class": "HardnessModel", "seed": self.seed,
                                                   "settings": self.settings.to_dict()})  # fmt: skip

    @classmethod
    def load(cls, folder: str | Path) -> HardnessModel:
        """Refit the full model from the saved arrays; the out-of-fold predictions are data and
        come back as saved."""
        folder = Path(folder)
        cfg_path = folder / "config.json"
        if not cfg_path.is_file() or not (folder / "training.npz").is_file():
            raise PipelineInputError(f"{folder}: no hardness model (config.json + training.npz); "
                                     "materialize hardness_model first")  # fmt: skip
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("class") != "HardnessModel":
            raise PipelineInputError(f"{cfg_path}: not a hardness model config")
        data = load_npz(folder / "training.npz")
        if "weights" not in data:
            raise PipelineInputError(f"{folder}: a hardness model from before cross-fitting; re-materialize it")
        model = cls(HardnessSettings.from_mapping(cfg["settings"], f"{cfg_path}: "), cfg["seed"])
        _fit(model.model, data["features"], data["oks"], data["weights"])
        model.features, model.targets, model.weights = data["features"], data["oks"], data["weights"]
        model.pose_ids, model.folds, model.oof, model.baseline = (data["pose_ids"].astype(str), data["folds"],
                                                                  data["oof"], data["baseline"])  # fmt: skip
        return model


def read_draw_scores(folder: str | Path, pose_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted OKS, out-of-fold?) per bank row from the hardness model's ``predictions.parquet``,
    the ranking round 2 draws by (so every round-2 shard uses exactly what the asset published)."""
    path = Path(folder) / PREDICTIONS_FILE
    if not path.is_file():
        raise PipelineInputError(f"{path}: no hardness predictions; materialize hardness_model first")
    table = pd.read_parquet(path, columns=["pose_id", "predicted_oks", "out_of_fold"]).set_index("pose_id")
    ids = pd.Index(np.asarray(pose_ids).astype(str))
    missing = ids.difference(table.index)
    if len(missing):
        raise PipelineInputError(f"{path}: {len(missing)} pose-bank poses (e.g. {missing[0]}) have no prediction: the "
                                 "pose bank changed since hardness_model; re-materialize hardness_model")  # fmt: skip
    rows = table.loc[ids]
    return rows.predicted_oks.to_numpy(dtype=np.float64), rows.out_of_fold.to_numpy(dtype=bool)
