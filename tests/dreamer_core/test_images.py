"""The shared image conversion rounds to nearest and clamps, for one image, a batch or a grid of
candidates alike; the COCO keypoints of a label are its first 17 joints."""

import numpy as np
import torch

from dreamer_core.images import COCO_KEYPOINTS, coco_keypoints, stack_coco_keypoints, to_uint8


def test_to_uint8_rounds_clamps_and_moves_channels_last():
    x = torch.tensor([-0.5, 0.0, 0.5 / 255, 1.49 / 255, 0.5, 1.0, 2.0]).view(1, 7, 1).expand(3, 7, 1)
    out = to_uint8(x)
    assert out.shape == (7, 1, 3) and out.dtype == np.uint8
    assert out[:, 0, 0].tolist() == [0, 0, 0, 1, 128, 255, 255]  # numpy rounds half to even: 0.5 -> 0


def test_to_uint8_is_the_same_for_every_leading_shape():
    torch.manual_seed(0)
    grid = torch.rand(2, 3, 3, 4, 5)
    assert np.array_equal(to_uint8(grid)[1, 2], to_uint8(grid[1, 2]))
    assert np.array_equal(to_uint8(grid[0]), np.stack([to_uint8(im) for im in grid[0]]))


def test_coco_keypoints_are_the_first_17_joints():
    class S:
        labels = {"keypoints_2d": np.arange(25 * 3, dtype=np.float64).reshape(25, 3).tolist()}

    kp = coco_keypoints(S.labels)
    assert kp.shape == (COCO_KEYPOINTS, 3) and kp.dtype == np.float32 and kp[-1, 0] == 48.0
    assert stack_coco_keypoints([S(), S()]).shape == (2, 17, 3)
