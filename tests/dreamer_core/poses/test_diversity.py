import numpy as np
import torch

from dreamer_core.poses.diversity import farthest_point_indices, mean_nn_distance, pairwise_rms


def test_fps_picks_extremes_first():
    pts = torch.tensor([[0.0], [0.1], [0.2], [5.0], [10.0]])[:, None, :].expand(5, 1, 3).clone()
    idx = farthest_point_indices(pts, 3, np.random.default_rng(0))
    assert {0, 4} <= set(idx.tolist()) and len(set(idx.tolist())) == 3


def test_fps_is_more_diverse_than_random():
    g = torch.Generator().manual_seed(0)
    # Clustered pool: most points in one blob, a few spread out.
    pool = torch.cat([torch.randn(900, 4, 3, generator=g) * 0.05, torch.randn(100, 4, 3, generator=g)])
    rng = np.random.default_rng(0)
    fps = mean_nn_distance(pool[farthest_point_indices(pool, 100, rng)])
    rnd = mean_nn_distance(pool[rng.choice(1000, 100, replace=False)])
    assert fps > 1.5 * rnd


def test_rms_distance_units():
    a = torch.zeros(1, 4, 3)
    b = torch.zeros(1, 4, 3)
    b[0, :, 0] = 0.01  # every joint 10 mm away
    assert torch.allclose(pairwise_rms(a, b), torch.tensor([[0.01]]))
    assert abs(mean_nn_distance(torch.cat([a, b])) - 0.01) < 1e-6
