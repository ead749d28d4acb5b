"""Keypoint agreement metrics, exactly as COCO defines them (pycocotools ``COCOeval.computeOks``).

OKS = sum_i exp(-d_i^2 / (2 s^2 k_i^2)) [v_i > 0] / sum_i [v_i > 0], with k_i = 2 sigma_i (the
COCO-17 per-keypoint sigmas), d_i the pixel distance between predicted and labelled keypoint i and
s^2 the object's *segmentation* area: COCO uses the annotation's ``area`` field, the pixel count of
the person mask, not the box (a person covers about half of their box, so the box would make OKS
more lenient than COCO's). Here that is ``mask_area`` of the label's person mask, counted with the
same threshold ``bbox_from_mask`` uses, in the pixel frame of the keypoints. As in COCO, the area
gets ``np.spacing(1)`` added, so an empty mask scores 1 for exact keypoints and 0 otherwise instead
of dividing by zero. Samples without labelled keypoints get NaN (COCO would fall back to distances
to the box for crowd matching, which single-person labels never need).

PCK is COCO-unrelated and keeps its usual normaliser, the longer side of the label's box.
"""

from __future__ import annotations

import numpy as np

# COCO-17 sigmas (cocoapi, pycocotools/cocoeval.py), in COCO-17 order.
COCO_SIGMAS = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
     0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
)  # fmt: skip

MASK_THRESHOLD_U8 = 128  # uint8 masks: the threshold of ``datasets.labels.bbox_from_mask``
MASK_THRESHOLD_FLOAT = 0.5  # float masks in [0, 1] (uint8 / 255): > 0.5 is exactly >= 128 / 255


def mask_area(masks, size: tuple[int, int] | None = None) -> np.ndarray:
    """Person-mask pixel count per sample [N], the ``s^2`` of OKS.

    ``masks`` is [N, H, W] or [N, 1, H, W] (numpy or CPU torch): integer masks (the uint8 masks of
    shards) count pixels >= 128, float masks (uint8 / 255, as ``sample_to_tensors`` gives them)
    count pixels > 0.5 (the same pixels), boolean masks count True. ``size`` = (width, height) of
    the image the keypoints are in pixels of; when it differs from the mask's (W, H) the count is
    scaled by (width / W) * (height / H), so the area is in the keypoints' pixel units.
    """
    m = np.asarray(masks)
    if m.ndim == 4:
        if m.shape[1] != 1:
            raise ValueError(f"masks [N, 1, H, W] expected, got shape {m.shape}")
        m = m[:, 0]
    if m.ndim != 3:
        raise ValueError(f"masks [N, H, W] or [N, 1, H, W] expected, got shape {m.shape}")
    if m.dtype == bool:
        person = m
    elif np.issubdtype(m.dtype, np.integer):
        person = m >= MASK_THRESHOLD_U8
    else:
        if m.size and np.nanmax(m) > 1.0:  # a uint8 mask cast to float without / 255
            raise ValueError("float masks must lie in [0, 1] (divide uint8 masks by 255)")
        person = m > MASK_THRESHOLD_FLOAT
    area = person.reshape(len(person), -1).sum(-1).astype(float)
    if size is not None:
        h, w = m.shape[-2:]
        area *= (size[0] / w) * (size[1] / h)
    return area


def oks(pred: np.ndarray, gt: np.ndarray, visibility: np.ndarray, area: np.ndarray,
        sigmas: np.ndarray = COCO_SIGMAS) -> np.ndarray:  # fmt: skip
    """OKS per sample [N]. pred, gt [N, K, 2] pixels; visibility [N, K] (COCO v: 0 unlabelled, 1/2
    labelled); area [N], the segmentation area from ``mask_area`` (a [N, 4] box is refused)."""
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    area = np.asarray(area, float)
    if area.shape != (len(gt),):
        raise ValueError(f"area must be [N] = [{len(gt)}] segmentation areas (mask_area), got shape {area.shape}")
    labelled = np.asarray(visibility) > 0
    d2 = ((pred - gt) ** 2).sum(-1)
    var = (2 * np.asarray(sigmas)) ** 2
    e = d2 / var[None] / (area[:, None] + np.spacing(1)) / 2  # computeOks, term for term
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
