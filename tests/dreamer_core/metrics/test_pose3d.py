"""PA-MPJPE and friends on hand-made cases with known answers, and against an independent
implementation (numerical minimisation over rotation, scale and translation)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from dreamer_core.metrics.pose3d import mpjpe, pa_mpjpe, pve, similarity_align


def _joints(n: int, j: int = 17, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.3, (n, j, 3))


def test_known_similarity_transform_gives_zero():
    x = _joints(5)
    rot = Rotation.random(5, random_state=1).as_matrix()
    moved = 1.7 * np.einsum("nij,nkj->nki", rot, x) + np.array([0.3, -2.0, 5.0])
    np.testing.assert_allclose(pa_mpjpe(moved, x), 0.0, atol=1e-9)
    assert (mpjpe(moved, x) > 0.05).all()  # without alignment the error is large


def test_perturbation_that_no_similarity_can_absorb_gives_its_size():
    # Four unit points in the z = 0 plane, moved +-e along z in a pattern with no translation or
    # rotation component: the best alignment keeps the rotation and shrinks the (now longer) points
    # by s = 1 / (1 + e^2), which leaves every point off by e / sqrt(1 + e^2) (worked by hand).
    x = np.array([[[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]]])
    e = 0.05
    y = x + np.array([[[0, 0, e], [0, 0, e], [0, 0, -e], [0, 0, -e]]])
    np.testing.assert_allclose(pa_mpjpe(y, x), [e / np.sqrt(1 + e**2)], atol=1e-12)
    aligned = similarity_align(y, x)
    np.testing.assert_allclose(aligned[0, :, :2], x[0, :, :2] / (1 + e**2), atol=1e-12)
    # Root alignment: moving every joint by the same offset is free; moving one joint is not.
    shifted = x + np.array([0.0, 0.0, 3.0])
    np.testing.assert_allclose(mpjpe(shifted, x), [0.0], atol=1e-12)
    one = x.copy()
    one[0, 2, 1] += 0.4
    np.testing.assert_allclose(mpjpe(one, x), [0.1])


def _independent_pa(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean joint distance at the numerically found similarity transform with least squared error
    (the Procrustes objective), from several random starts."""

    def moved(v: np.ndarray) -> np.ndarray:
        return np.exp(v[3]) * Rotation.from_rotvec(v[:3]).apply(pred) + v[4:]

    def cost(v: np.ndarray) -> float:
        return float(((moved(v) - target) ** 2).sum())

    starts = [np.r_[Rotation.random(random_state=s).as_rotvec(), 0.0, target.mean(0)] for s in range(8)]
    best = min((minimize(cost, x0, method="BFGS", options={"gtol": 1e-12}) for x0 in starts), key=lambda r: r.fun)
    return float(np.linalg.norm(moved(best.x) - target, axis=1).mean())


def test_matches_independent_minimisation():
    target = _joints(4, seed=2)
    pred = target + np.random.default_rng(3).normal(0, 0.03, target.shape)
    pred = 0.8 * np.einsum("ij,nkj->nki", Rotation.random(random_state=4).as_matrix(), pred) + 1.0
    ours = pa_mpjpe(pred, target)
    ref = [_independent_pa(pred[i], target[i]) for i in range(4)]
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_no_reflection_and_input_validation():
    x = _joints(1, j=10, seed=5)
    mirrored = x * np.array([-1.0, 1.0, 1.0])
    aligned = similarity_align(mirrored, x)
    assert pa_mpjpe(mirrored, x)[0] > 0.01  # a mirror image is not a similarity transform
    np.testing.assert_allclose(aligned.mean(axis=1), x.mean(axis=1), atol=1e-12)
    with pytest.raises(ValueError, match="one shape"):
        mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))
    bad = np.zeros((1, 4, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pa_mpjpe(bad, np.zeros((1, 4, 3)))


def test_pve_aligns_roots():
    v = _joints(2, j=100, seed=6)
    root = v[:, 0]
    np.testing.assert_allclose(pve(v + 2.0, v, root + 2.0, root), 0.0, atol=1e-12)
    noisy = v + np.array([0.01, 0.0, 0.0])
    np.testing.assert_allclose(pve(noisy, v, root, root), 0.01, atol=1e-12)
