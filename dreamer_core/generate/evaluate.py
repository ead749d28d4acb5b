"""How well generated images follow their controls, measured by a 2D pose detector.

OKS of the detector's keypoints against the label each control was rendered from (COCO's, with
the label's person-mask pixel count as the object area), and IoU of the detector's person mask
against the control's silhouette; both also against a shuffled pairing (each image scored against
another sample's label), the floor a control-blind model would reach.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from dreamer_core.keypoints.metrics import mask_area, oks


@torch.no_grad()
def detect(detector, images: torch.Tensor, batch: int = 128) -> dict[str, torch.Tensor]:
    outs = [detector.predict(images[i : i + batch]) for i in range(0, len(images), batch)]
    return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}


def per_sample_oks(pred_kp: np.ndarray, keypoints: np.ndarray, area: np.ndarray) -> np.ndarray:
    """OKS per sample [N] of keypoints [N, 17, 2] against labels [N, 17, 3] (u, v, visibility); NaN
    where a label has no labelled keypoint. ``area`` [N] is the segmentation area of each label,
    ``mask_area`` of its person mask (COCO's s^2): taken explicitly, and checked to be [N], so that
    no caller scores against a box area."""
    return oks(pred_kp, keypoints[..., :2], keypoints[..., 2], area)


def mask_iou(prob: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    pred = F.interpolate(prob[:, None], size=masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0] > 0.5
    gt = masks[:, 0] > 0.5
    inter = (pred & gt).flatten(1).sum(1).float()
    union = (pred | gt).flatten(1).sum(1).float().clamp_min(1)
    return (inter / union).numpy()


def control_agreement(detector, images: torch.Tensor, keypoints: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Mean OKS / mask IoU against the own labels (matched) and against labels rolled by one
    (shuffled); ``masks`` [N, 1, H, W] in [0, 1] are the labels' person masks, which give both the
    IoU target and the OKS area. Needs at least two samples."""
    if len(images) < 2:
        raise ValueError("control_agreement needs at least two samples (shuffled pairing)")
    det = detect(detector, images)
    kp, area = keypoints.numpy(), mask_area(masks)
    pred = det["keypoints"].numpy()
    roll = np.roll(np.arange(len(kp)), 1)
    has_mask = "mask" in det  # the heatmap detector segments the person; ViTPose does not (then NaN)
    return {
        "oks_matched": float(np.nanmean(per_sample_oks(pred, kp, area))),
        "oks_shuffled": float(np.nanmean(per_sample_oks(pred, kp[roll], area[roll]))),
        "mask_iou_matched": float(mask_iou(det["mask"], masks).mean()) if has_mask else float("nan"),
        "mask_iou_shuffled": float(mask_iou(det["mask"], masks[torch.as_tensor(roll)]).mean())
        if has_mask
        else float("nan"),
    }


def grain(images: torch.Tensor) -> float:
    """Mean absolute difference between vertically adjacent pixels: renders sit near 0.02, pure
    pixel noise near 0.3, so it tracks how grainy samples are."""
    return float((images[..., 1:, :] - images[..., :-1, :]).abs().mean())
