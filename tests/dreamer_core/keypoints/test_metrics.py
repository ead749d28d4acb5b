"""OKS (COCO's, with the segmentation area) and PCK against hand-computed cases."""

import math
import warnings

import numpy as np
import pytest
import torch

from dreamer_core.datasets.labels import bbox_from_mask
from dreamer_core.keypoints.metrics import COCO_SIGMAS, mask_area, oks, pck


def one_person(pred_offsets: dict[int, float], visible: list[int]) -> tuple[np.ndarray, ...]:
    gt = np.tile([[50.0, 50.0]], (17, 1))[None]
    pred = gt.copy()
    for k, dx in pred_offsets.items():
        pred[0, k, 0] += dx
    vis = np.zeros((1, 17))
    vis[0, visible] = 2
    return pred, gt, vis


def l_mask() -> np.ndarray:
    """A 40 x 40 uint8 L: a 4 px wide bar down the left edge (4 x 40 = 160 px) and a 4 px high bar
    along the bottom (36 x 4 = 144 px): 304 person pixels in a 40 x 40 = 1600 px box. Two
    anti-aliased edge pixels sit either side of the threshold: 128 counts, 127 does not."""
    m = np.zeros((40, 40), np.uint8)
    m[:, :4] = 255
    m[36:, 4:] = 255
    m[10, 4], m[11, 4] = 128, 127
    return m


def test_coco_formula_by_hand():
    # Nose (sigma 0.026): k = 0.052, area 10000 px, 10 px off: exp(-100 / (2 * 10000 * 0.052^2)).
    pred, gt, vis = one_person({0: 10.0}, [0])
    expected = math.exp(-100 / (2 * 10000 * (2 * 0.026) ** 2))
    assert oks(pred, gt, vis, np.array([10000.0]))[0] == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.1574, abs=1e-4)
    pred, gt, vis = one_person({}, list(range(17)))
    assert oks(pred, gt, vis, np.array([900.0]))[0] == pytest.approx(1.0)


def test_mask_area_counts_person_pixels_of_uint8_float_and_bool_masks():
    m = l_mask()
    assert mask_area(m[None]) == pytest.approx([305.0])  # 304 + the 128 pixel, not the 127 one
    assert mask_area(m[None, None].astype(np.float32) / 255) == pytest.approx([305.0])  # as torch_dataset stores it
    assert mask_area(m[None] >= 128) == pytest.approx([305.0])
    assert mask_area(torch.from_numpy(m).float()[None, None] / 255) == pytest.approx([305.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mask_area(m[None].astype(np.float32))  # uint8 values in a float array: refused, not miscounted


def test_mask_area_is_in_the_keypoints_pixel_frame():
    full = np.full((1, 20, 30), 255, np.uint8)  # 600 px at 30 x 20
    assert mask_area(full, size=(30, 20)) == pytest.approx([600.0])
    assert mask_area(full, size=(60, 40)) == pytest.approx([2400.0])  # keypoints at twice the resolution
    assert mask_area(full, size=(15, 10)) == pytest.approx([150.0])


def test_the_segmentation_area_not_the_box_is_used():
    # Left hip (sigma 0.107) 4 px off; the L's box is 1600 px but the person covers 305 of them.
    m = l_mask()
    x0, y0, x1, y1 = bbox_from_mask(m)
    box = (x1 - x0) * (y1 - y0)
    assert box == 1600.0
    pred, gt, vis = one_person({11: 4.0}, [11])
    k2 = (2 * 0.107) ** 2
    by_mask = math.exp(-16 / (2 * 305 * k2))
    by_box = math.exp(-16 / (2 * 1600 * k2))
    got = oks(pred, gt, vis, mask_area(m[None]))[0]
    assert got == pytest.approx(by_mask, rel=1e-12)
    assert got == pytest.approx(0.5640, abs=1e-4) and by_box == pytest.approx(0.8966, abs=1e-4)
    assert got < by_box - 0.3


def test_average_over_labelled_only_and_unlabelled_ignored():
    # Nose exact, left hip 20 px off, left ankle (unlabelled) wildly off and ignored; mask of 2500 px.
    pred, gt, vis = one_person({11: 20.0, 15: 500.0}, [0, 11])
    vis[0, 15] = 0
    area = mask_area(np.full((1, 50, 50), 255, np.uint8))
    assert area == pytest.approx([2500.0])
    expected = (1.0 + math.exp(-400 / (2 * 2500 * (2 * 0.107) ** 2))) / 2
    assert oks(pred, gt, vis, area)[0] == pytest.approx(expected, rel=1e-12)
    vis[0, 15] = 1  # labelled but occluded (COCO v = 1) counts like v = 2
    three = 1.0 + math.exp(-400 / (2 * 2500 * (2 * 0.107) ** 2)) + math.exp(-(500**2) / (2 * 2500 * (2 * 0.089) ** 2))
    assert oks(pred, gt, vis, area)[0] == pytest.approx(three / 3, rel=1e-12)


def test_empty_label_is_nan_and_larger_people_tolerate_more():
    pred, gt, vis = one_person({5: 8.0}, [])
    assert math.isnan(oks(pred, gt, vis, np.array([100.0]))[0])
    pred, gt, vis = one_person({5: 8.0}, [5])
    small, large = oks(np.repeat(pred, 2, 0), np.repeat(gt, 2, 0), np.repeat(vis, 2, 0), np.array([400.0, 40000.0]))
    assert small < large


def test_zero_area_mask_does_not_divide_by_zero():
    # COCO adds np.spacing(1) to the area: exact keypoints still score 1, any offset scores 0.
    pred, gt, vis = one_person({0: 3.0}, [0, 1])
    area = mask_area(np.zeros((1, 40, 40), np.uint8))
    assert area == pytest.approx([0.0])
    with warnings.catch_warnings(), np.errstate(divide="raise", invalid="raise", over="raise"):
        warnings.simplefilter("error")
        got = oks(pred, gt, vis, area)[0]
    assert got == pytest.approx(0.5)  # keypoint 1 exact -> 1, keypoint 0 off -> 0


def test_a_box_is_refused_as_area():
    pred, gt, vis = one_person({}, [0])
    with pytest.raises(ValueError, match="mask_area"):
        oks(pred, gt, vis, np.array([[0.0, 0.0, 40.0, 40.0]]))


def test_sigmas_and_pck():
    assert len(COCO_SIGMAS) == 17 and COCO_SIGMAS[0] == 0.026 and COCO_SIGMAS[-1] == 0.089
    pred, gt, vis = one_person({0: 5.0, 1: 20.0}, [0, 1, 2])
    assert pck(pred, gt, vis, np.array([[0, 0, 100, 80]]), 0.1) == pytest.approx(2 / 3)
