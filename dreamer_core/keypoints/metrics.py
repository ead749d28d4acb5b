"""Keypoint agreement metrics, exactly as COCO defines them.

OKS = sum_i exp(-d_i^2 / (2 s^2 k_i^2)) [v_i > 0] / sum_i [v_i > 0], with k_i = 2 sigma_i (the
COCO-17 per-keypoint sigmas), s^2 the object's area (here the box area, w * h) and d_i the pixel
distance between predicted and labelled keypoint i. Samples without labelled keypoints get NaN.
"""

from __future__ import annotations

import numpy as np

# COCO-17 sigmas (cocoapi, pycocotools/cocoeval.py), in COCO-17 order.
COCO_SIGMAS = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
     0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
)  # fmt: skip


def box_area(bbox: np.ndarray) -> np.ndarray:
    """[..., 4] (x0, y0, x1, y1) -> [...] area."""
    b = np.asarray(bbox, dtype=float)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def oks(pred: np.ndarray, gt: np.ndarray, visibility: np.ndarray, area: np.ndarray,
        sigmas: np.ndarray = COCO_SIGMAS) -> np.ndarray:  # fmt: skip
    """pred, gt [N, K, 2] pixels; visibility [N, K] (COCO v: 0 unlabelled, 1/2 labelled); area [N]."""
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    labelled = np.asarray(visibility) > 0
    d2 = ((pred - gt) ** 2).sum(-1)
    var = (2 * np.asarray(sigmas)) ** 2
    e = d2 / (2 * var[None] * (np.asarray(area, float)[:, None] + np.spacing(1)))
    num = (np.exp(-e) * labelled).sum(-1)
    den = labelled.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def pck(pred: np.ndarray, gt: np.ndarray, visibility: np.ndarray, bbox: np.ndarray, alpha: float = 0.1) -> float:
    """Fraction of labelled keypoints within ``alpha`` x the box's longer side of the label."""
    b = np.asarray(bbox, float)
    size = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    d = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)
    labelled = np.asarray(visibility) > 0
    return float(((d <= alpha * size[:, None]) & labelled).sum() / max(labelled.sum(), 1))
