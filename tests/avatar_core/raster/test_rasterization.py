"""The rasterizer against closed forms: one isotropic Gaussian's footprint and peak, two
Gaussians' depth order; autograd against finite differences (float64); batched scenes equal
scene-by-scene renders; SH degree 0 equals plain colours; and gsplat's CUDA kernels where a GPU
exists."""

import math

import pytest
import torch

from avatar_core.raster import rasterization

EPS2D = 0.3


def camera(size: int, focal: float, cameras: int = 1, dtype=torch.float32):
    viewmats = torch.eye(4, dtype=dtype).repeat(cameras, 1, 1)  # camera at the origin looking down +z
    K = torch.tensor([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]], dtype=dtype)
    return viewmats, K.repeat(cameras, 1, 1)


def splat(means, scale, opacity, colors, size=32, focal=100.0, dtype=torch.float32, **kw):
    n = len(means)
    vm, K = camera(size, focal, dtype=dtype)
    return rasterization(torch.tensor(means, dtype=dtype), torch.tensor([[1.0, 0, 0, 0]] * n, dtype=dtype),
                         torch.full((n, 3), scale, dtype=dtype), torch.tensor(opacity, dtype=dtype),
                         torch.tensor(colors, dtype=dtype), vm, K, size, size, eps2d=EPS2D, **kw)  # fmt: skip


def closed_form_alpha(size: int, cx: float, cy: float, var: float, opacity: float) -> torch.Tensor:
    """alpha at each pixel centre of an isotropic 2D Gaussian of variance ``var`` (px^2)."""
    y, x = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    a = opacity * torch.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / var)
    return torch.where(a >= 1 / 255, a.clamp(max=0.999), torch.zeros_like(a))


def test_one_isotropic_gaussian_footprint_and_peak():
    z, s, f, o = 4.0, 0.05, 100.0, 0.7
    rgb, alpha, meta = splat([[0.0, 0.0, z]], s, [o], [[1.0, 1.0, 1.0]], focal=f)
    var = (f * s / z) ** 2 + EPS2D  # the projected variance, plus gsplat's screen-space dilation
    expected = closed_form_alpha(32, 16.0, 16.0, var, o)
    torch.testing.assert_close(alpha[0, ..., 0], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rgb[0, ..., 0], expected, atol=1e-5, rtol=1e-5)  # white on black
    peak = alpha[0, ..., 0]
    assert set(map(tuple, (peak == peak.max()).nonzero().tolist())) == {(15, 15), (15, 16), (16, 15), (16, 16)}
    assert float(peak.sum()) == pytest.approx(o * 2 * math.pi * var, rel=0.02)  # the footprint's integral
    assert int(meta["radii"][0, 0, 0]) == math.ceil(3.33 * math.sqrt(var))


def test_nearer_gaussian_is_in_front_whatever_the_input_order():
    red, blue = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    o, s = 0.6, 0.05
    front, _, _ = splat([[0.0, 0.0, 3.0], [0.0, 0.0, 5.0]], s, [o, o], [red, blue])
    shuffled, _, _ = splat([[0.0, 0.0, 5.0], [0.0, 0.0, 3.0]], s, [o, o], [blue, red])
    torch.testing.assert_close(front, shuffled)
    a_red = o * math.exp(-0.5 * 0.5 / ((100 * s / 3) ** 2 + EPS2D))  # pixel (15, 15): 0.5 px off in x and y
    a_blue = o * math.exp(-0.5 * 0.5 / ((100 * s / 5) ** 2 + EPS2D))
    pixel = front[0, 15, 15]
    assert float(pixel[0]) == pytest.approx(a_red, rel=1e-4)
    assert float(pixel[2]) == pytest.approx(a_blue * (1 - a_red), rel=1e-4)
    back, _, _ = splat([[0.0, 0.0, 5.0], [0.0, 0.0, 3.0]], s, [o, o], [red, blue])
    assert float(back[0, 15, 15, 2]) > float(back[0, 15, 15, 0])


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    n, size = 3, 8
    means = (torch.tensor([[0.0, 0.0, 3.0], [0.05, -0.04, 3.5], [-0.06, 0.03, 4.0]], dtype=torch.float64)
             + 0.01 * torch.randn(n, 3, dtype=torch.float64)).requires_grad_(True)  # fmt: skip
    quats = torch.randn(n, 4, dtype=torch.float64, requires_grad=True)
    scales = torch.tensor([[0.06, 0.04, 0.05]] * n, dtype=torch.float64, requires_grad=True)
    opac = torch.tensor([0.5, 0.6, 0.7], dtype=torch.float64, requires_grad=True)
    colors = torch.rand(n, 3, dtype=torch.float64, requires_grad=True)
    vm, K = camera(size, 40.0, dtype=torch.float64)

    def render(m, q, s, o, c):
        rgb, alpha, _ = rasterization(m, q, s, o, c, vm, K, size, size, tile_size=4)
        return rgb, alpha

    assert torch.autograd.gradcheck(render, (means, quats, scales, opac, colors), eps=1e-6, atol=1e-6)


def test_batched_scenes_and_cameras_equal_one_by_one():
    torch.manual_seed(1)
    b, n, c, size = 2, 40, 3, 24
    means = torch.randn(b, n, 3) * 0.2 + torch.tensor([0.0, 0.0, 3.0])
    quats, scales = torch.randn(b, n, 4), torch.rand(b, n, 3) * 0.05 + 0.01
    opac, colors = torch.rand(b, n), torch.rand(b, n, 3)
    vm, K = camera(size, 50.0, cameras=c)
    vm[1, 0, 3], vm[2, 1, 3] = 0.1, -0.1
    vms, Ks = vm.expand(b, c, 4, 4), K.expand(b, c, 3, 3)
    bg = torch.tensor([0.2, 0.3, 0.4]).expand(b, c, 3)
    rgb, alpha, _ = rasterization(means, quats, scales, opac, colors, vms, Ks, size, size, backgrounds=bg)
    assert rgb.shape == (b, c, size, size, 3) and alpha.shape == (b, c, size, size, 1)
    for i in range(b):
        one, one_alpha, _ = rasterization(means[i], quats[i], scales[i], opac[i], colors[i], vm, K, size, size,
                                          backgrounds=bg[i])  # fmt: skip
        torch.testing.assert_close(rgb[i], one, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(alpha[i], one_alpha, atol=1e-6, rtol=1e-6)
        assert (one_alpha > 0.01).any() and (one_alpha < 0.99).any()


def test_tile_size_changes_speed_not_the_image():
    torch.manual_seed(3)
    n, size = 300, 40
    scene = (torch.randn(n, 3) * 0.25 + torch.tensor([0.0, 0.0, 3.0]), torch.randn(n, 4), torch.rand(n, 3) * 0.06,
             torch.rand(n), torch.rand(n, 3))  # fmt: skip
    vm, K = camera(size, 60.0)
    images = [rasterization(*scene, vm, K, size, size, tile_size=t)[0] for t in (4, 8, 16)]
    for image in images[1:]:
        torch.testing.assert_close(image, images[0], atol=1e-6, rtol=0)


def test_sh_degree_zero_is_the_plain_colour():
    from avatar_core.gaussians import rgb_to_sh

    colors = [[0.9, 0.2, 0.1], [0.1, 0.8, 0.3]]
    means = [[0.02, 0.0, 3.0], [-0.03, 0.01, 3.4]]
    plain, _, _ = splat(means, 0.05, [0.8, 0.8], colors)
    sh, _, _ = splat(means, 0.05, [0.8, 0.8], rgb_to_sh(torch.tensor(colors))[:, None].tolist(), sh_degree=0)
    torch.testing.assert_close(sh, plain, atol=1e-6, rtol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat's kernels need CUDA")
def test_matches_gsplat_on_cuda():
    torch.manual_seed(2)
    n, size = 2000, 64
    means = torch.randn(n, 3) * 0.3 + torch.tensor([0.0, 0.0, 3.0])
    quats, scales = torch.randn(n, 4), torch.rand(n, 3) * 0.03 + 0.005
    opac, colors = torch.rand(n), torch.rand(n, 3)
    vm, K = camera(size, 80.0, cameras=2)
    vm[1, 0, 3] = 0.2
    args = (means, quats, scales, opac, colors, vm, K, size, size)
    ours, ours_alpha, _ = rasterization(*args, backend="torch")
    cuda = [a.cuda() if isinstance(a, torch.Tensor) else a for a in args]
    theirs, theirs_alpha, _ = rasterization(*cuda, backend="gsplat")
    torch.testing.assert_close(ours, theirs.cpu(), atol=2e-3, rtol=0)
    torch.testing.assert_close(ours_alpha, theirs_alpha.cpu(), atol=2e-3, rtol=0)
