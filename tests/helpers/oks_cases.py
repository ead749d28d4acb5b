"""Hand-computable OKS cases for the callers of ``per_sample_oks``: person masks whose pixel
count differs from their box, and a detector whose prediction is read off the image, so every
caller's OKS can be checked against COCO's formula with the mask area (and shown not to be the
box-area value)."""

from __future__ import annotations

import math

import numpy as np
import torch

SIZE = 40
HIP = 11  # left hip, COCO sigma 0.107
K2 = (2 * 0.107) ** 2


def l_mask() -> np.ndarray:
    """40 x 40 uint8 L (left bar 4 x 40 + bottom bar 36 x 4): 304 px in a 1600 px box."""
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[:, :4] = 255
    m[36:, 4:] = 255
    return m


def square_mask(side: int) -> np.ndarray:
    """A side x side uint8 square in the top-left corner: mask area == box area == side^2."""
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[:side, :side] = 255
    return m


def masks_uint8() -> np.ndarray:
    """Two labels' person masks [2, 40, 40]: the L (304 px, box 1600 px) and a 20 px square (400 px)."""
    return np.stack([l_mask(), square_mask(20)])


MASK_AREAS = np.array([304.0, 400.0])
BOX_AREAS = np.array([1600.0, 400.0])


def labels() -> np.ndarray:
    """[2, 17, 3]: only the left hip labelled, at (20, 20)."""
    kp = np.zeros((2, 17, 3), np.float32)
    kp[:, HIP] = (20.0, 20.0, 2.0)
    return kp


def images(shift_x: list[float]) -> torch.Tensor:
    """[N, 3, 40, 40] images whose constant value encodes the predicted hip's x offset (see
    ``ShiftDetector``)."""
    return torch.stack([torch.full((3, SIZE, SIZE), 0.5 + dx / 100.0) for dx in shift_x])


class ShiftDetector:
    """Predicts every keypoint at (20 + 100 * (mean pixel - 0.5), 20): the offset an image encodes."""

    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        dx = (x.mean(dim=(1, 2, 3)) - 0.5) * 100.0
        kp = torch.zeros(len(x), 17, 2)
        kp[..., 0] = 20.0 + dx[:, None]
        kp[..., 1] = 20.0
        return {"keypoints": kp, "scores": torch.ones(len(x), 17)}


def hand_oks(dx: float, area: float) -> float:
    """COCO's OKS with one labelled keypoint (the left hip) ``dx`` pixels off."""
    return math.exp(-(dx**2) / (2 * area * K2))
