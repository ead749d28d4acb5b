"""Scores relative to one common baseline.

A ratio "model error / baseline error" only compares across rows when every row divides by the
same baseline: dividing each model by a baseline fitted to its *own* training set (as the HMR
benchmark once did) makes a model look better simply because its training set's mean pose happens
to fit the test set badly. So a table holds exactly one baseline row per (test set, metric), and
every other row on that test set and metric is divided by it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KEYS = ["model", "train_set", "test_set", "metric"]


def ratios_to_baseline(scores: pd.DataFrame, model: str, train_set: str) -> pd.Series:
    """``value / baseline value`` for every row that is not the baseline, indexed by
    (model, train_set, test_set, metric); the baseline is the row (``model``, ``train_set``) of the
    same test set and metric.

    Raises ``ValueError`` when a (test set, metric) lacks its baseline row, has more than one, or
    the baseline value is not a positive finite number (a ratio against it would mean nothing)."""
    missing = [k for k in [*KEYS, "value"] if k not in scores.columns]
    if missing:
        raise ValueError(f"scores lack the columns {missing}")
    is_base = (scores.model == model) & (scores.train_set == train_set)
    base, rows = scores[is_base], scores[~is_base]
    doubled = base[base.duplicated(["test_set", "metric"], keep=False)]
    if len(doubled):
        cells = sorted(set(zip(doubled.test_set, doubled.metric, strict=True)))
        raise ValueError(f"more than one {model}/{train_set} baseline row for {cells}")
    denom = base.set_index(["test_set", "metric"]).value
    wanted = pd.MultiIndex.from_frame(rows[["test_set", "metric"]])
    absent = sorted({c for c in wanted if c not in denom.index})
    if absent:
        raise ValueError(f"no {model}/{train_set} baseline row for (test set, metric) {absent}")
    bad = denom[~(np.isfinite(denom) & (denom > 0))]
    if len(bad):
        raise ValueError(f"the {model}/{train_set} baseline is not a positive finite number at {bad.to_dict()}")
    ratio = rows.value.to_numpy(dtype=np.float64) / denom.reindex(wanted).to_numpy(dtype=np.float64)
    return pd.Series(ratio, index=pd.MultiIndex.from_frame(rows[KEYS]), name="ratio")
