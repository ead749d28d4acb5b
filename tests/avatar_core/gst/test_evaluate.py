"""PSNR and SSIM against their closed forms on hand-made images."""

import math

import pytest
import torch

from avatar_core.gst.evaluate import psnr, ssim


def test_psnr_of_a_constant_error_and_within_a_mask():
    target = torch.rand(2, 16, 16, 3)
    pred = target + 0.1
    assert psnr(pred, target).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)  # -10 log10(0.01)
    mask = torch.zeros(2, 16, 16, 1)
    mask[:, :8] = 1.0
    pred[:, 8:] = target[:, 8:] + 0.5  # outside the mask: ignored
    assert psnr(pred, target, mask).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)


def test_ssim_closed_forms():
    x = torch.rand(1, 24, 24, 3)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    # Two flat images: the variance terms cancel, SSIM = (2 a b + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 0.3, 0.7, 0.01**2
    value = float(ssim(torch.full((1, 24, 24, 3), a), torch.full((1, 24, 24, 3), b)))
    assert value == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-3)  # float32 variances
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert 0.0 < float(ssim(noisy, x)) < 0.9 and math.isfinite(float(ssim(noisy, x, torch.ones(1, 24, 24, 1))))
