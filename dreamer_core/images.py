"""Image and keypoint conversions that every stage shares, written once.

Tensors hold images as floats in [0, 1], channels first; files, previews and metrics take uint8
channels last. Labels keep every body joint; detectors, OKS and the filter read the first 17,
which follow COCO's keypoint order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

COCO_KEYPOINTS = 17


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[..., 3, H, W] floats in [0, 1] (clamped) -> [..., H, W, 3] uint8, rounded to nearest."""
    return (images.clamp(0, 1).movedim(-3, -1).numpy() * 255).round().astype(np.uint8)


def coco_keypoints(labels: Mapping[str, Any]) -> np.ndarray:
    """[17, 3] (u, v, visibility) float32: the COCO part of a label's ``keypoints_2d``."""
    return np.asarray(labels["keypoints_2d"], dtype=np.float32)[:COCO_KEYPOINTS]


def stack_coco_keypoints(samples: Iterable[Any]) -> np.ndarray:
    """[N, 17, 3] of samples' labels (anything with ``.labels``)."""
    return np.stack([coco_keypoints(s.labels) for s in samples])
