"""3D human pose and shape errors, in the units of the inputs (the benchmarks pass metres and
report millimetres):

- MPJPE: mean per-joint position error after aligning the roots (pelvis) of prediction and label;
- PA-MPJPE: the same after the best similarity transform (rotation, isotropic scale, translation)
  of the prediction onto the label (Procrustes analysis, Umeyama's closed form, no reflections);
- PVE: mean per-vertex error after aligning the roots, on meshes of the same topology.
"""

from __future__ import annotations

import numpy as np


def _check(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"expected prediction and target of one shape [N, J, 3], got {pred.shape} and {target.shape}")
    if not (np.isfinite(pred).all() and np.isfinite(target).all()):
        raise ValueError("prediction or target holds NaN or infinite values")
    return pred, target


def mpjpe(pred: np.ndarray, target: np.ndarray, root: int = 0) -> np.ndarray:
    """Per sample [N]: mean joint distance after subtracting each set's ``root`` joint."""
    pred, target = _check(pred, target)
    p = pred - pred[:, root : root + 1]
    t = target - target[:, root : root + 1]
    return np.linalg.norm(p - t, axis=-1).mean(axis=1)


def similarity_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``pred`` [N, J, 3] moved by the rotation, scale and translation that minimise the squared
    distance to ``target`` (a proper rotation: det = +1)."""
    pred, target = _check(pred, target)
    mu_p, mu_t = pred.mean(axis=1, keepdims=True), target.mean(axis=1, keepdims=True)
    p, t = pred - mu_p, target - mu_t
    cov = np.einsum("nji,njk->nik", t, p)  # sum_j t_j p_j^T
    u, sigma, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    fix = np.ones_like(sigma)
    fix[:, -1] = d
    rot = u @ (fix[..., None] * vt)
    var_p = (p**2).sum(axis=(1, 2))
    scale = (sigma * fix).sum(axis=1) / np.maximum(var_p, 1e-12)
    return scale[:, None, None] * np.einsum("nik,njk->nji", rot, p) + mu_t


def pa_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per sample [N]: mean joint distance after Procrustes alignment of the prediction."""
    aligned = similarity_align(pred, target)
    return np.linalg.norm(aligned - np.asarray(target, dtype=np.float64), axis=-1).mean(axis=1)


def pve(pred_vertices: np.ndarray, target_vertices: np.ndarray, pred_root: np.ndarray,
        target_root: np.ndarray) -> np.ndarray:  # fmt: skip
    """Per sample [N]: mean vertex distance after moving each mesh's root joint [N, 3] to the origin."""
    pred, target = _check(pred_vertices, target_vertices)
    p = pred - np.asarray(pred_root, dtype=np.float64)[:, None]
    t = target - np.asarray(target_root, dtype=np.float64)[:, None]
    return np.linalg.norm(p - t, axis=-1).mean(axis=1)
