"""Image statistics that catch what a generator gets wrong without a model: blank frames (no
contrast), blown-out or black frames (clipped pixels), and blur (little high-frequency energy)."""

from __future__ import annotations

import numpy as np


def grey(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] -> float32 [N, H, W] in [0, 1] (Rec. 601 luma)."""
    x = images.astype(np.float32) / 255.0
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def contrast(g: np.ndarray) -> np.ndarray:
    """Grey-level standard deviation per image: ~0 for a blank frame."""
    return g.reshape(len(g), -1).std(axis=1)


def saturated_fraction(images: np.ndarray) -> np.ndarray:
    """Share of pixels whose channels are all clipped to 0 or all to 255."""
    return ((images <= 2).all(-1) | (images >= 253).all(-1)).reshape(len(images), -1).mean(axis=1)


def sharpness(g: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian per image: falls as an image blurs."""
    lap = -4 * g[:, 1:-1, 1:-1] + g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:]
    return lap.reshape(len(g), -1).var(axis=1)
