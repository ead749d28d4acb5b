"""Ratios against one common baseline: every row on a test set divides by the same baseline row,
so two models' ratios compare; a missing, doubled or non-positive baseline is an error, not a number."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dreamer_core.metrics.baseline import ratios_to_baseline

POOL = "reference_renders_train"


def _rows(values: dict[tuple[str, str, str, str], float]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "train_set": t, "test_set": s, "metric": k, "value": v}
                         for (m, t, s, k), v in values.items()])  # fmt: skip


def test_every_row_divides_by_the_one_baseline_of_its_test_set_and_metric():
    scores = _rows({
        ("mean_pose", POOL, "rendered", "mpjpe"): 200.0, ("mean_pose", POOL, "rendered", "pve"): 250.0,
        ("mean_pose", POOL, "generated", "mpjpe"): 100.0, ("mean_pose", POOL, "generated", "pve"): 125.0,
        ("hmr", "rendered", "rendered", "mpjpe"): 100.0, ("hmr", "rendered", "rendered", "pve"): 200.0,
        ("hmr", "rendered", "generated", "mpjpe"): 90.0, ("hmr", "rendered", "generated", "pve"): 100.0,
        ("hmr", "generated", "rendered", "mpjpe"): 160.0, ("hmr", "generated", "rendered", "pve"): 50.0,
        ("hmr", "generated", "generated", "mpjpe"): 60.0, ("hmr", "generated", "generated", "pve"): 25.0,
    })  # fmt: skip
    ratio = ratios_to_baseline(scores.sample(frac=1.0, random_state=0), "mean_pose", POOL)  # order must not matter
    assert len(ratio) == 8 and ("mean_pose", POOL, "rendered", "mpjpe") not in ratio.index
    expected = {("rendered", "rendered", "mpjpe"): 0.5, ("rendered", "rendered", "pve"): 0.8,
                ("rendered", "generated", "mpjpe"): 0.9, ("rendered", "generated", "pve"): 0.8,
                ("generated", "rendered", "mpjpe"): 0.8, ("generated", "rendered", "pve"): 0.2,
                ("generated", "generated", "mpjpe"): 0.6, ("generated", "generated", "pve"): 0.2}  # fmt: skip
    for (train, test, metric), want in expected.items():
        assert ratio["hmr", train, test, metric] == pytest.approx(want)
    # The same model error gives the same ratio whatever it was trained on: the point of one baseline.
    assert ratio["hmr", "rendered", "generated", "pve"] == ratio["hmr", "rendered", "rendered", "pve"]


def test_a_missing_doubled_or_non_positive_baseline_is_refused():
    hmr = {("hmr", "mixed", "rendered", "mpjpe"): 80.0, ("hmr", "mixed", "generated", "mpjpe"): 70.0}
    base = {("mean_pose", POOL, "rendered", "mpjpe"): 100.0}
    with pytest.raises(ValueError, match="no mean_pose/reference_renders_train baseline row.*generated"):
        ratios_to_baseline(_rows({**hmr, **base}), "mean_pose", POOL)
    # A per-training-set baseline (the old table) is not the common one and does not stand in for it.
    with pytest.raises(ValueError, match="no mean_pose"):
        ratios_to_baseline(_rows({**hmr, ("mean_pose", "mixed", "generated", "mpjpe"): 90.0, **base}),
                           "mean_pose", POOL)  # fmt: skip
    full = {**hmr, **base, ("mean_pose", POOL, "generated", "mpjpe"): 0.0}
    with pytest.raises(ValueError, match="not a positive finite number"):
        ratios_to_baseline(_rows(full), "mean_pose", POOL)
    doubled = pd.concat([_rows({**hmr, **base}), _rows(base)])
    with pytest.raises(ValueError, match="more than one"):
        ratios_to_baseline(doubled, "mean_pose", POOL)
    with pytest.raises(ValueError, match="lack the columns"):
        ratios_to_baseline(_rows(hmr).drop(columns="value"), "mean_pose", POOL)


def test_baseline_alone_gives_an_empty_series():
    ratio = ratios_to_baseline(_rows({("mean_pose", POOL, "rendered", "mpjpe"): 100.0}), "mean_pose", POOL)
    assert ratio.empty and np.issubdtype(ratio.dtype, np.floating)
