"""PSNR and SSIM against their closed forms on hand-made images, and SSIM against scikit-image's
independent implementation with the settings the field reports (Gaussian 11 px window, sigma 1.5,
population covariance, peak 1, border cropped), including renders that overshoot [0, 1]."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from avatar_core.gst.evaluate import psnr, ssim, ssim_map


def reference_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> list[float]:
    """scikit-image's SSIM of each [H, W, C] pair, clamped to [0, 1] as a saved image would be (scikit-image
    itself takes the values as given); with ``mask``, its full SSIM map (channel mean) averaged over the mask
    pixels of the region it averages (the map less the 5 px border)."""
    out = []
    for i in range(len(pred)):
        a, b = (t[i].double().clamp(0, 1).numpy() for t in (pred, target))
        value, smap = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                            data_range=1.0, channel_axis=-1, full=True)  # fmt: skip
        if mask is None:
            out.append(float(value))
        else:
            w = mask[i, 5:-5, 5:-5, 0].double().numpy()
            out.append(float((smap.mean(-1)[5:-5, 5:-5] * w).sum() / w.sum()))
    return out


def person_pair(gen: torch.Generator, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A textured ellipse over a black background and a shifted, noisy, overshooting render of it (black where
    it has no person, as a Gaussian render is), with the target's soft mask: the shape of a GST evaluation."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    mask = ((1.0 - (xx / 0.35) ** 2 - (yy / 0.8) ** 2) * 4).clamp(0, 1)[None, :, :, None]
    texture = 0.5 + 0.4 * torch.sin(7 * xx + 3 * yy)[None, :, :, None] * torch.tensor([1.0, 0.6, 0.2])
    target = texture * mask
    alpha = torch.roll(mask, shifts=(1, 2), dims=(1, 2))  # the render's own silhouette, off by a pixel or two
    render = torch.roll(target, shifts=(1, 2), dims=(1, 2)) * 1.3 + 0.1 * torch.randn(1, h, w, 3, generator=gen) * alpha
    return render, target, mask


def test_ssim_equals_scikit_image_on_random_structured_and_out_of_range_images():
    gen = torch.Generator().manual_seed(0)
    uniform = torch.rand(3, 32, 40, 3, generator=gen)
    cases = [
        (torch.rand(3, 32, 40, 3, generator=gen), uniform),  # independent noise
        (uniform + 0.1 * torch.randn(3, 32, 40, 3, generator=gen), uniform),  # noisy copy, out of [0, 1]
        (1.8 * uniform - 0.4, uniform),  # contrast stretch: about a third of the values clamp
    ]
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    checker = (((yy // 8) + (xx // 8)) % 2)[None, :, :, None].expand(2, 64, 64, 3)
    ramp = (xx / 63)[None, :, :, None].expand(2, 64, 64, 3)
    cases += [(checker, ramp), (torch.roll(checker, 3, dims=2), checker), (checker * 0.5 + 0.2, checker)]
    cases.append(person_pair(gen, 64, 64)[:2])
    cases.append(person_pair(gen, 48, 30)[:2])  # not square
    for pred, target in cases:
        ours = ssim(pred, target).tolist()
        assert ours == pytest.approx(reference_ssim(pred, target), abs=1e-4)
    assert ssim_map(torch.rand(2, 64, 48, 3), torch.rand(2, 64, 48, 3)).shape == (2, 54, 38)


def test_masked_ssim_is_scikit_images_map_averaged_over_the_mask():
    gen = torch.Generator().manual_seed(1)
    for h, w in ((64, 64), (48, 30)):
        render, target, mask = person_pair(gen, h, w)
        ours = float(ssim(render, target, mask))
        assert ours == pytest.approx(reference_ssim(render, target, mask)[0], abs=1e-4)
        # The person is scored on its own: the background (identical black on both) would lift the full image.
        assert ours < float(ssim(render, target))
    hard = torch.zeros(1, 32, 32, 1)
    hard[:, 10:20, 12:22] = 1.0
    pred, target = torch.rand(1, 32, 32, 3, generator=gen), torch.rand(1, 32, 32, 3, generator=gen)
    assert float(ssim(pred, target, hard)) == pytest.approx(float(ssim_map(pred, target)[0, 5:15, 7:17].mean()))
    only_border = torch.zeros(1, 32, 32, 1)
    only_border[:, :4] = 1.0  # no window centred there fits: undefined
    assert math.isnan(float(ssim(pred, target, only_border)))


def test_psnr_of_a_constant_error_and_within_a_mask():
    target = torch.rand(2, 16, 16, 3) * 0.8
    pred = target + 0.1
    assert psnr(pred, target).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)  # -10 log10(0.01)
    mask = torch.zeros(2, 16, 16, 1)
    mask[:, :8] = 1.0
    pred[:, 8:] = target[:, 8:] + 0.5  # outside the mask: ignored
    assert psnr(pred, target, mask).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)


def test_masked_psnr_by_hand():
    target = torch.zeros(1, 2, 2, 1)
    pred = torch.tensor([[0.1, 0.2], [0.3, 1.7]]).reshape(1, 2, 2, 1)
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).reshape(1, 2, 2, 1)
    # Inside the mask: MSE (0.1^2 + 0.2^2) / 2 = 0.025.
    assert float(psnr(pred, target, mask)) == pytest.approx(-10 * math.log10(0.025), abs=1e-5)
    # Full image, 1.7 clamped to 1: MSE (0.01 + 0.04 + 0.09 + 1) / 4 = 0.285.
    assert float(psnr(pred, target)) == pytest.approx(-10 * math.log10(0.285), abs=1e-5)
    # A soft mask weights its pixels: (1 * 0.01 + 0.5 * 0.04) / 1.5 = 0.02.
    soft = torch.tensor([[1.0, 0.5], [0.0, 0.0]]).reshape(1, 2, 2, 1)
    assert float(psnr(pred, target, soft)) == pytest.approx(-10 * math.log10(0.02), abs=1e-5)
    # Colour: the mask covers every channel of its pixels; errors 0.1, 0.2, 0.3 on the one masked pixel.
    rgb_pred = torch.zeros(1, 2, 2, 3)
    rgb_pred[0, 0, 0] = torch.tensor([0.1, 0.2, 0.3])
    rgb_pred[0, 1, 1] = 0.9  # outside the mask
    one = torch.zeros(1, 2, 2, 1)
    one[0, 0, 0] = 1.0
    expected = -10 * math.log10(np.mean([0.01, 0.04, 0.09]))
    assert float(psnr(rgb_pred, torch.zeros(1, 2, 2, 3), one)) == pytest.approx(expected, abs=1e-5)
    assert math.isnan(float(psnr(pred, target, torch.zeros(1, 2, 2, 1))))  # empty mask: undefined, not 100 dB


def test_ssim_closed_forms_and_clamping():
    x = torch.rand(1, 24, 24, 3)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    # Two flat images: the variance terms cancel, SSIM = (2 a b + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 0.3, 0.7, 0.01**2
    value = float(ssim(torch.full((1, 24, 24, 3), a), torch.full((1, 24, 24, 3), b)))
    assert value == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert 0.0 < float(ssim(noisy, x)) < 0.9 and math.isfinite(float(ssim(noisy, x, torch.ones(1, 24, 24, 1))))
    # An overshooting render scores as the image it saves to.
    over = x.clone()
    over[:, :12] = over[:, :12] * 3 - 1
    assert float(ssim(over, x)) == pytest.approx(float(ssim(over.clamp(0, 1), x)), abs=1e-7)
    assert float(psnr(over, x)) == pytest.approx(float(psnr(over.clamp(0, 1), x)), abs=1e-5)
    with pytest.raises(ValueError, match="11 px"):
        ssim(torch.rand(1, 10, 24, 3), torch.rand(1, 10, 24, 3))
