"""Train / validation / test: one split of the pose ids, made once in the pose bank.

Held out means held out: every training and tuning step (generator, DPO pairs, hardness model,
generation rounds) draws from ``train`` poses only; defaults and thresholds are chosen on ``val``;
``test`` is touched only to report. The split of a pose depends on (seed, pose_id) alone, so a
bank that grows keeps every earlier pose on its side; ``test`` is the same draw as before the
validation split existed (u < test_fraction), validation the next ``val_fraction`` of it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dreamer_core.errors import ConfigError
from dreamer_core.seeds import stream

SPLITS = ("train", "val", "test")


def assign_splits(pose_ids: Iterable[str], val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """The split name of each pose id (``U5`` array in the input order)."""
    if val_fraction <= 0 or test_fraction <= 0 or val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"pose_bank: val_fraction {val_fraction} and test_fraction {test_fraction} must be above 0 and sum below 1"
        )
    u = np.array([stream(seed, "pose-split", str(p)).random() for p in pose_ids])
    return np.where(u < test_fraction, "test", np.where(u < test_fraction + val_fraction, "val", "train")).astype("U5")
