"""The hardness regressor on real pose-bank poses: it learns a pose-dependent difficulty (here how
far the body is from upright, with per-sample noise like camera draws give) and beats predicting
the mean on poses it never saw; a saved model reloads without unpickling and predicts the same;
round draws are seeded per shard and round 2 draws only from the predicted-hardest pool."""

from __future__ import annotations

import numpy as np
import pytest

from dreamer_core.errors import PipelineInputError
from dreamer_core.mining.hardness import HardnessModel, HardnessSettings, difficulty, heldout_poses, pose_features
from dreamer_core.mining.rounds import draw_hard, draw_random, hard_pool
from tests.helpers.renders import small_bank


@pytest.fixture(scope="module")
def bank(anny_body):
    return small_bank(anny_body, 160, seed=3)


def test_learns_pose_difficulty_on_heldout_poses(bank):
    a = bank.arrays
    features = pose_features(a)
    world = features[:, -66:].reshape(-1, 22, 3)
    upright = np.ptp(world[:, :, 1], axis=1) / np.linalg.norm(np.ptp(world, axis=1), axis=1)  # Y extent share
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(features), 600)  # samples repeat poses, like random round-1 draws
    oks = np.clip(0.25 + 0.6 * upright[rows] + rng.normal(0, 0.05, len(rows)), 0, 1)
    model = HardnessModel(HardnessSettings(), seed=0)
    m = model.fit(features[rows], oks, a["pose_id"][rows])
    assert m["heldout_mae"] < 0.7 * m["baseline_mae"] and m["heldout_r2"] > 0.4, m
    held = heldout_poses(a["pose_id"][rows], 0.25, 0)
    assert not set(a["pose_id"][rows][held]) & set(a["pose_id"][rows][~held])  # whole poses held out


def test_save_load_refits_identically(bank, tmp_path):
    features = pose_features(bank.arrays)
    rng = np.random.default_rng(1)
    oks = rng.random(len(features))
    model = HardnessModel(HardnessSettings(max_iter=20), seed=4)
    model.fit(features, oks, bank.arrays["pose_id"])
    model.save(tmp_path)
    again = HardnessModel.load(tmp_path)
    np.testing.assert_array_equal(again.predict(features), model.predict(features))
    with pytest.raises(PipelineInputError, match="materialize hardness_model"):
        HardnessModel.load(tmp_path / "missing")


def test_too_few_poses_is_a_clear_error():
    with pytest.raises(PipelineInputError, match="add round-1 shards"):
        HardnessModel(HardnessSettings(), 0).fit(np.zeros((3, 4)), np.ones(3) * 0.5, np.array(["a", "a", "a"]))


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
