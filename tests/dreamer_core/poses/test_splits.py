"""The train / validation / test split of pose ids: disjoint, stable per pose, the test side the
same draw as before validation existed."""

from __future__ import annotations

import numpy as np
import pytest

from dreamer_core.errors import ConfigError
from dreamer_core.poses.splits import SPLITS, assign_splits
from dreamer_core.seeds import stream

IDS = [f"pose_{i:06d}" for i in range(4000)]


def test_every_pose_gets_one_split_in_the_configured_shares():
    splits = assign_splits(IDS, 0.15, 0.1, seed=3)
    assert set(splits) == set(SPLITS)
    share = {s: float(np.mean(splits == s)) for s in SPLITS}
    assert share["test"] == pytest.approx(0.10, abs=0.02) and share["val"] == pytest.approx(0.15, abs=0.02)


def test_a_pose_keeps_its_split_when_the_bank_grows_or_is_reordered():
    small = dict(zip(IDS[:500], assign_splits(IDS[:500], 0.15, 0.15, seed=3), strict=True))
    grown = dict(zip(IDS[::-1], assign_splits(IDS[::-1], 0.15, 0.15, seed=3), strict=True))
    assert all(grown[p] == s for p, s in small.items())


def test_test_side_is_the_draw_u_below_test_fraction():
    """Adding validation moved no test pose: test is exactly the poses whose draw is below
    ``test_fraction`` (the rule before validation existed)."""
    splits = assign_splits(IDS, 0.2, 0.15, seed=9)
    before = np.array([stream(9, "pose-split", p).random() < 0.15 for p in IDS])
    assert np.array_equal(splits == "test", before)


def test_another_seed_gives_another_split():
    assert (assign_splits(IDS, 0.15, 0.15, seed=1) != assign_splits(IDS, 0.15, 0.15, seed=2)).mean() > 0.2


@pytest.mark.parametrize(("val", "test"), [(0.5, 0.5), (0.0, 0.0), (0.7, 0.4)])
def test_fractions_that_leave_no_training_poses_are_refused(val, test):
    with pytest.raises(ConfigError, match="val_fraction"):
        assign_splits(IDS[:10], val, test, seed=1)
