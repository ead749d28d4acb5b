"""The HMR regressor's wiring: both backbones give parameters of the right shapes, start exactly
at the configured mean, and pass gradients from every output to the backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer_core.bodies.rotations import axis_angle_to_matrix
from dreamer_core.hmr.model import HMR, NUM_JOINTS, HMRConfig


@pytest.mark.parametrize("backbone", ["cnn", "vit"])
def test_shapes_mean_start_and_gradients(backbone):
    torch.manual_seed(0)
    model = HMR(HMRConfig(image_size=32, backbone=backbone, width=16, depth=2, patch=8, dim=32, num_shape=6))
    go, bp = torch.randn(50, 3) * 0.3, torch.randn(50, 21, 3) * 0.2
    shape, cam = torch.randn(50, 6), torch.tensor([[0.8, 0.05, -0.1]]).repeat(50, 1)
    model.set_mean(go, bp, shape, cam)
    out = model(torch.rand(4, 3, 32, 32))
    assert out["rotmat"].shape == (4, NUM_JOINTS, 3, 3) and out["body_pose"].shape == (4, 21, 3)
    assert out["shape"].shape == (4, 6) and out["cam"].shape == (4, 3)
    # Zero-initialised heads: the untrained model predicts the mean parameters for every image.
    np.testing.assert_allclose(out["shape"].detach(), shape.mean(0).expand(4, 6), atol=1e-6)
    np.testing.assert_allclose(out["cam"].detach(), cam.mean(0).expand(4, 3), atol=1e-6)
    mats = axis_angle_to_matrix(torch.cat([go[:, None], bp], 1))
    err_mean = (out["rotmat"][0].detach() - mats.mean(0)).norm()
    err_first = (out["rotmat"][0].detach() - mats[0]).norm()
    assert err_mean < 0.5 * err_first  # the stored rotation is the projected mean, near every sample
    loss = out["rotmat"].sum() + out["shape"].sum() + out["cam"].sum()
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith(("pose_head", "shape_head", "cam_head")):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.zero_grad()
    model(torch.rand(4, 3, 32, 32))["body_pose"].sum().backward()  # through the heads into the backbone
    model.pose_head.weight.data.normal_(0, 0.01)
    model(torch.rand(4, 3, 32, 32))["body_pose"].pow(2).sum().backward()
    first = next(model.backbone.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_config_validation():
    with pytest.raises(ValueError, match="cnn or vit"):
        HMRConfig(backbone="resnet")
    with pytest.raises(ValueError, match="multiple of patch"):
        HMRConfig(backbone="vit", image_size=60, patch=8)
