import math

import pytest
import torch

from dreamer_core.bodies.rotations import (
    axis_angle_to_matrix,
    euler_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
    rotation_between,
)


def test_axis_angle_round_trip_and_orthonormal():
    g = torch.Generator().manual_seed(0)
    aa = torch.randn(500, 3, generator=g, dtype=torch.float64)
    aa = aa / aa.norm(dim=-1, keepdim=True) * torch.rand(500, 1, generator=g, dtype=torch.float64) * math.pi * 0.999
    rot = axis_angle_to_matrix(aa)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(rot @ rot.transpose(-1, -2), eye.expand_as(rot), atol=1e-10)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(500, dtype=torch.float64))
    assert torch.allclose(matrix_to_axis_angle(rot), aa, atol=1e-8)


def test_known_rotation():
    rot = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    assert torch.allclose(rot @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)


@pytest.mark.parametrize("order", ["xyz", "yxz", "zxy", "xzy"])
def test_euler_orders_round_trip(order):
    g = torch.Generator().manual_seed(1)
    ang = (torch.rand(200, 3, generator=g, dtype=torch.float64) * 2 - 1) * math.pi * 0.95
    middle = "xyz".index(order[1])
    ang[:, middle] *= 0.5  # the middle angle of a Tait-Bryan order lives in (-90, 90) degrees
    assert torch.allclose(matrix_to_euler(euler_to_matrix(ang, order), order), ang, atol=1e-8)


def test_rotation_between():
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, -0.6, 0.8])
    assert torch.allclose(rotation_between(a, b) @ a, b, atol=1e-6)
