"""OKS and PCK against hand-computed cases."""

import math

import numpy as np
import pytest

from dreamer_core.keypoints.metrics import COCO_SIGMAS, box_area, oks, pck


def one_person(pred_offsets: dict[int, float], visible: list[int]) -> tuple[np.ndarray, ...]:
    gt = np.tile([[50.0, 50.0]], (17, 1))[None]
    pred = gt.copy()
    for k, dx in pred_offsets.items():
        pred[0, k, 0] += dx
    vis = np.zeros((1, 17))
    vis[0, visible] = 2
    return pred, gt, vis


def test_perfect_prediction_is_one():
    pred, gt, vis = one_person({}, list(range(17)))
    assert oks(pred, gt, vis, np.array([900.0]))[0] == pytest.approx(1.0)


def test_single_keypoint_by_hand():
    # Nose (sigma 0.026): k = 0.052, area 100 x 100, 10 px off: exp(-100 / (2 * 0.052^2 * 10000)).
    pred, gt, vis = one_person({0: 10.0}, [0])
    expected = math.exp(-100 / (2 * 0.052**2 * 10000))
    assert oks(pred, gt, vis, np.array([10000.0]))[0] == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.1574, abs=1e-4)


def test_average_over_labelled_only_and_unlabelled_ignored():
    # Left hip (sigma 0.107) 20 px off, nose exact; the ankle (unlabelled) is wildly off and ignored.
    pred, gt, vis = one_person({11: 20.0, 15: 500.0}, [0, 11])
    k = 2 * 0.107
    expected = (1.0 + math.exp(-400 / (2 * k**2 * 2500))) / 2
    assert oks(pred, gt, vis, np.array([2500.0]))[0] == pytest.approx(expected, rel=1e-9)


def test_no_labelled_keypoints_is_nan_and_larger_people_tolerate_more():
    pred, gt, vis = one_person({5: 8.0}, [])
    assert math.isnan(oks(pred, gt, vis, np.array([100.0]))[0])
    pred, gt, vis = one_person({5: 8.0}, [5])
    small, large = oks(np.repeat(pred, 2, 0), np.repeat(gt, 2, 0), np.repeat(vis, 2, 0), np.array([400.0, 40000.0]))
    assert small < large


def test_sigmas_and_helpers():
    assert len(COCO_SIGMAS) == 17 and COCO_SIGMAS[0] == 0.026 and COCO_SIGMAS[-1] == 0.089
    assert box_area(np.array([[10, 20, 40, 60]])) == pytest.approx([1200.0])
    pred, gt, vis = one_person({0: 5.0, 1: 20.0}, [0, 1, 2])
    assert pck(pred, gt, vis, np.array([[0, 0, 100, 80]]), 0.1) == pytest.approx(2 / 3)
