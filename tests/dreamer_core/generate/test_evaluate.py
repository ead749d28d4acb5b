"""Control agreement scores OKS with COCO's object area, the label's person-mask pixel count (not
its box), for the matched and the shuffled pairing alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer_core.generate.evaluate import control_agreement, per_sample_oks
from tests.helpers.oks_cases import BOX_AREAS, MASK_AREAS, ShiftDetector, hand_oks, images, labels, masks_uint8


def test_per_sample_oks_takes_an_area_and_refuses_a_box():
    kp = labels()
    pred = kp[..., :2] + np.array([4.0, 0.0], np.float32)
    got = per_sample_oks(pred, kp, MASK_AREAS)
    assert got == pytest.approx([hand_oks(4, 304), hand_oks(4, 400)], rel=1e-6)
    with pytest.raises(ValueError, match="mask_area"):
        per_sample_oks(pred, kp, np.array([[0, 0, 40, 40], [0, 0, 20, 20]], float))


def test_control_agreement_uses_the_mask_area_for_matched_and_shuffled():
    masks = torch.from_numpy(masks_uint8()).float()[:, None] / 255.0  # as stack_samples gives them
    x = images([4.0, 8.0])
    scores = control_agreement(ShiftDetector(), x, torch.from_numpy(labels()), masks)
    # Both labels have the hip at (20, 20): image i is dx_i off whichever label it is scored against.
    matched = (hand_oks(4, MASK_AREAS[0]) + hand_oks(8, MASK_AREAS[1])) / 2
    shuffled = (hand_oks(4, MASK_AREAS[1]) + hand_oks(8, MASK_AREAS[0])) / 2  # roll by one: the areas swap
    assert scores["oks_matched"] == pytest.approx(matched, rel=1e-5)
    assert scores["oks_shuffled"] == pytest.approx(shuffled, rel=1e-5)
    by_box = (hand_oks(4, BOX_AREAS[0]) + hand_oks(8, BOX_AREAS[1])) / 2
    assert scores["oks_matched"] < by_box - 0.05
    assert np.isnan(scores["mask_iou_matched"])  # this detector has no person mask
