"""The hardness regressor on real pose-bank poses, and what makes its numbers honest:

- out-of-fold predictions never come from a model that saw the pose: a spy regressor records what
  each fit trained on, and a target that is pure per-pose noise is memorised in sample but carries
  no signal out of fold;
- every sample of a pose is in one fold, folds are balanced and seeded;
- held-out MAE / R^2 / Spearman and the mean baseline (the training folds' mean) agree with
  sklearn / scipy recomputed from scratch;
- a learnable pose difficulty (how far the body is from upright, plus per-sample noise like camera
  draws give) beats the mean on held-out poses;
- round 2 ranks seen poses by their out-of-fold score and unseen poses by the full model's;
- a saved model reloads without unpickling and predicts the same; round draws are seeded per shard.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import mean_absolute_error, r2_score

from dreamer_core.config import HardnessSettings
from dreamer_core.errors import PipelineInputError
from dreamer_core.mining import hardness
from dreamer_core.mining.hardness import (
    PREDICTIONS_FILE,
    HardnessModel,
    difficulty,
    pose_features,
    pose_folds,
    read_draw_scores,
    world_joints,
)
from dreamer_core.mining.rounds import draw_hard, draw_random, hard_pool

# Flexible enough to memorise one value per pose when it sees the pose.
MEMORISE = HardnessSettings(max_iter=60, learning_rate=0.5, max_leaf_nodes=31, min_samples_leaf=1,
                            l2_regularization=0.0)  # fmt: skip


@pytest.fixture(scope="module")
def features(bank):
    return pose_features(bank.arrays)


def _noise_target(bank, per_pose: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bank rows, OKS, pose ids): each pose's samples share a value drawn independently of the pose."""
    rng = np.random.default_rng(seed)
    value = rng.random(len(bank))
    rows = np.repeat(np.arange(len(bank)), per_pose)
    return rows, np.clip(value[rows] + rng.normal(0, 0.01, len(rows)), 0, 1), bank.arrays["pose_id"][rows]


def test_out_of_fold_predictions_carry_no_memorised_noise(bank, features):
    rows, oks, ids = _noise_target(bank)
    model = HardnessModel(MEMORISE, seed=0)
    m = model.fit(features[rows], oks, ids)
    in_sample = spearmanr(model.predict(model.features), model.targets).statistic
    assert in_sample > 0.9  # a model that saw the poses "knows" their noise
    assert abs(spearmanr(model.oof, model.targets).statistic) < 0.3  # out of fold it knows nothing
    assert abs(m["heldout_pose_spearman"]) < 0.3 and not m["beats_mean"]


class _Spy:
    """Stands in for the regressor: remembers the rows it trained on and predicts its own id."""

    fits: list[_Spy] = []

    def __init__(self, *args, **kwargs) -> None:
        self.id = len(_Spy.fits)
        _Spy.fits.append(self)

    def fit(self, x, y, sample_weight=None):
        self.trained = {row.tobytes() for row in x}
        return self

    def predict(self, x):
        return np.full(len(x), self.id / 100.0)


def test_each_out_of_fold_score_comes_from_a_model_that_never_saw_the_pose(bank, features, monkeypatch):
    monkeypatch.setattr(hardness, "HistGradientBoostingRegressor", _Spy)
    _Spy.fits = []
    rows, oks, ids = _noise_target(bank, per_pose=2)
    model = HardnessModel(HardnessSettings(folds=4), seed=1)
    model.fit(features[rows], oks, ids)
    assert len(_Spy.fits) == 1 + 4  # the full model (made first) and one probe per fold
    probes = {round(f.id / 100.0, 6): f for f in _Spy.fits[1:]}
    for x, score, fold in zip(model.features, model.oof, model.folds, strict=True):
        probe = probes[round(float(score), 6)]
        assert x.tobytes() not in probe.trained
        assert probe.id == 1 + fold  # the probe of the pose's own fold
    # ... and each probe trained on every pose of the other folds.
    for fold, probe in enumerate(_Spy.fits[1:]):
        assert probe.trained == {x.tobytes() for x in model.features[model.folds != fold]}


def test_folds_hold_whole_poses_balanced_and_seeded():
    ids = np.array([f"pose_{i % 23:03d}" for i in range(100)])  # poses repeat, in any order
    folds = pose_folds(ids, 5, seed=7)
    assert all(len(set(folds[ids == p])) == 1 for p in np.unique(ids))  # no pose straddles folds
    per_fold = np.bincount(pose_folds(np.unique(ids), 5, seed=7))
    assert per_fold.max() - per_fold.min() <= 1 and per_fold.sum() == 23
    np.testing.assert_array_equal(folds, pose_folds(ids[::-1], 5, seed=7)[::-1])  # order does not matter
    assert (folds != pose_folds(ids, 5, seed=8)).any()


def test_heldout_metrics_match_sklearn_and_scipy(bank, features):
    world = world_joints(bank.arrays)
    upright = np.ptp(world[:, :, 1], axis=1) / np.linalg.norm(np.ptp(world, axis=1), axis=1)
    rng = np.random.default_rng(2)
    rows = rng.integers(0, len(features), 400)
    oks = np.clip(0.3 + 0.5 * upright[rows] + rng.normal(0, 0.08, len(rows)), 0, 1)
    oks[::37] = np.nan  # failed detections are left out
    ids = bank.arrays["pose_id"][rows]
    model = HardnessModel(HardnessSettings(max_iter=40), seed=3)
    m = model.fit(features[rows], oks, ids)

    scored = np.isfinite(oks)
    y, pose = oks[scored], ids[scored]
    fold = dict(zip(model.pose_ids, model.folds, strict=True))
    sample_fold = np.array([fold[p] for p in pose])
    pred = np.array([model.oof[np.searchsorted(model.pose_ids, p)] for p in pose])
    base = np.array([y[sample_fold != f].mean() for f in sample_fold])  # the training folds' mean, per sample
    assert m["heldout_mae"] == pytest.approx(mean_absolute_error(y, pred))
    assert m["baseline_mae"] == pytest.approx(mean_absolute_error(y, base))
    assert m["heldout_r2"] == pytest.approx(r2_score(y, pred))
    assert m["baseline_r2"] == pytest.approx(r2_score(y, base))
    assert m["heldout_spearman"] == pytest.approx(spearmanr(pred, y).statistic)
    means = pd.Series(y).groupby(pose).mean()
    assert m["heldout_pose_spearman"] == pytest.approx(spearmanr(model.oof, means[model.pose_ids]).statistic)
    assert m["num_samples"] == scored.sum() and m["num_poses"] == len(set(pose)) == len(model.pose_ids)
    assert m["beats_mean"] == (m["heldout_mae"] < m["baseline_mae"])


def test_learns_pose_difficulty_on_heldout_poses(bank, features):
    world = world_joints(bank.arrays)
    upright = np.ptp(world[:, :, 1], axis=1) / np.linalg.norm(np.ptp(world, axis=1), axis=1)  # Y extent share
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(features), 600)  # samples repeat poses, like random round-1 draws
    oks = np.clip(0.25 + 0.6 * upright[rows] + rng.normal(0, 0.05, len(rows)), 0, 1)
    m = HardnessModel(HardnessSettings(), seed=0).fit(features[rows], oks, bank.arrays["pose_id"][rows])
    assert m["heldout_mae"] < 0.7 * m["baseline_mae"] and m["heldout_r2"] > 0.4 and m["beats_mean"], m
    assert m["heldout_pose_spearman"] > 0.5, m


def test_round2_ranks_seen_poses_out_of_fold_and_unseen_by_the_full_model(bank, features, tmp_path):
    ids = bank.arrays["pose_id"]
    seen_rows = np.arange(0, len(bank), 2)  # round 1 saw every other pose
    rng = np.random.default_rng(5)
    value = rng.random(len(bank))
    rows = np.repeat(seen_rows, 2)
    model = HardnessModel(MEMORISE, seed=0)
    model.fit(features[rows], value[rows], ids[rows])
    scores, oof = model.draw_scores(features, ids)
    full = model.predict(features)
    np.testing.assert_array_equal(oof, np.isin(np.arange(len(bank)), seen_rows))
    np.testing.assert_allclose(scores[seen_rows], model.oof[np.searchsorted(model.pose_ids, ids[seen_rows])])
    np.testing.assert_allclose(scores[~oof], full[~oof])
    # The in-sample model would have drawn the poses whose own samples scored low; the pool does not.
    pool = np.arange(len(bank))
    in_sample = hard_pool(pool, full, 0.25)
    honest = hard_pool(pool, scores, 0.25)
    order = np.lexsort((pool, scores))
    np.testing.assert_array_equal(honest, order[: len(honest)])
    assert set(honest) != set(in_sample)
    # Round 2 reads the same ranking back from the published table, in bank order.
    table = pd.DataFrame({"pose_id": ids, "predicted_oks": scores, "out_of_fold": oof})
    table.sample(frac=1.0, random_state=0).to_parquet(tmp_path / PREDICTIONS_FILE, index=False)
    again, again_oof = read_draw_scores(tmp_path, ids)
    np.testing.assert_array_equal(again, scores)
    np.testing.assert_array_equal(again_oof, oof)
    with pytest.raises(PipelineInputError, match="pose bank changed"):
        read_draw_scores(tmp_path, np.append(ids, "pose_new"))


def test_save_load_refits_identically(bank, features, tmp_path):
    rng = np.random.default_rng(1)
    oks = rng.random(len(features))
    model = HardnessModel(HardnessSettings(max_iter=20), seed=4)
    model.fit(features, oks, bank.arrays["pose_id"])
    model.save(tmp_path)
    again = HardnessModel.load(tmp_path)
    np.testing.assert_array_equal(again.predict(features), model.predict(features))
    for a, b in zip(again.draw_scores(features, bank.arrays["pose_id"]),
                    model.draw_scores(features, bank.arrays["pose_id"]), strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.joblib"))
    with pytest.raises(PipelineInputError, match="materialize hardness_model"):
        HardnessModel.load(tmp_path / "missing")


def test_too_few_poses_is_a_clear_error():
    with pytest.raises(PipelineInputError, match="add round-1 shards"):
        HardnessModel(HardnessSettings(), 0).fit(np.zeros((12, 4)), np.ones(12) * 0.5, np.arange(12) % 9)


def test_difficulty_bins():
    assert difficulty(np.array([0.95, 0.8, 0.7, 0.45, 0.1]), (0.8, 0.6, 0.4)).tolist() == [
        "easy", "easy", "medium", "hard", "very_hard"]  # fmt: skip


def test_round_draws():
    pool = np.arange(10, 110)
    a, b = draw_random(pool, 50, 7, "shard-000000"), draw_random(pool, 50, 7, "shard-000001")
    assert np.isin(a, pool).all() and (a == draw_random(pool, 50, 7, "shard-000000")).all() and (a != b).any()
    predicted = np.linspace(1, 0, 200)  # higher rows are predicted harder
    hard = hard_pool(pool, predicted, 0.2)
    assert sorted(hard.tolist()) == list(range(90, 110))
    drawn = draw_hard(pool, predicted, 0.2, 64, 7, "shard-000000")
    assert np.isin(drawn, hard).all() and predicted[drawn].mean() < predicted[pool].mean()
