"""Candidates and preference pairs: N seeded samples per control, scored by OKS of a pose detector
against the label the control was rendered from; best vs worst becomes a (winner, loser) pair when
the gap and the winner are large enough (PoseDreamer: gap >= 0.05, winner OKS >= 0.5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dreamer_core.config import DPOSettings
from dreamer_core.generate.evaluate import detect, per_sample_oks
from dreamer_core.keypoints.metrics import mask_area


@dataclass(frozen=True)
class PairRule:
    min_gap: float = DPOSettings.min_gap
    min_winner_oks: float = DPOSettings.min_winner_oks
    # best_worst: one pair per control (PoseDreamer); all: every ordered candidate pair that passes
    # the rule (N candidates give up to N(N-1)/2 pairs from the same generation cost)
    pairing: str = DPOSettings.pairing

    def __post_init__(self) -> None:
        if self.pairing not in ("best_worst", "all"):
            raise ValueError(f"dpo pairing {self.pairing!r} is not best_worst or all")


def score_candidates(detector, images: torch.Tensor, keypoints: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """images [C, N, 3, H, W], labels per control (keypoints [C, 17, 3], person masks [C, 1, H, W])
    -> OKS [C, N]; the mask's pixel count is the OKS area, as in COCO."""
    c, n = images.shape[:2]
    pred = detect(detector, images.flatten(0, 1))["keypoints"].numpy()
    kp = np.repeat(keypoints.numpy(), n, axis=0)
    area = np.repeat(mask_area(masks), n)
    return per_sample_oks(pred, kp, area).reshape(c, n)


def select_pairs(scores: np.ndarray, rule: PairRule) -> list[tuple[int, int, int]]:
    """(control, winner candidate, loser candidate) for every candidate pair whose OKS differ by at
    least ``min_gap`` with a winner of at least ``min_winner_oks``: the best and worst of each control
    (``best_worst``), or every such pair (``all``, by control, then winner, then loser)."""
    pairs = []
    for c, row in enumerate(scores):
        if np.isfinite(row).sum() < 2:  # unscorable candidates (NaN: no visible label keypoint) are ignored
            continue
        if rule.pairing == "best_worst":
            candidates = [(int(np.nanargmax(row)), int(np.nanargmin(row)))]
        else:
            order = [int(i) for i in np.argsort(-row, kind="stable") if np.isfinite(row[i])]
            candidates = [(w, lo) for a, w in enumerate(order) for lo in order[a + 1 :]]
        pairs += [(c, w, lo) for w, lo in candidates
                  if row[w] >= rule.min_winner_oks and row[w] - row[lo] >= rule.min_gap]  # fmt: skip
    return pairs
