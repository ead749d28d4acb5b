"""``rasterization``: gsplat's signature on every device.

On CUDA it calls ``gsplat.rasterization``; elsewhere it projects with gsplat's own pure-PyTorch
pieces (``gsplat.cuda._torch_impl``: covariances, projection to 2D conics, spherical harmonics)
and composites with ``avatar_core.raster.cpu``. Callers (GST training, evaluation, the demo) never
branch on the device. Shapes follow gsplat: means [..., N, 3], quats [..., N, 4] (wxyz, any
norm), scales [..., N, 3], opacities [..., N], colours [..., N, D] or SH coefficients
[..., N, K, 3] with ``sh_degree``, viewmats [..., C, 4, 4] (world to camera), Ks [..., C, 3, 3].
Returns colours [..., C, H, W, D], alphas [..., C, H, W, 1] and a dict (radii, means2d, depths).
``tile_size`` defaults to each backend's best (16 on gsplat, ``CPU_TILE_SIZE`` here).
"""

from __future__ import annotations

from typing import Any

import torch

from avatar_core.raster.cpu import composite

BACKENDS = ("auto", "gsplat", "torch")
# gsplat's CUDA kernels use 16 px tiles. The compositor evaluates every pixel of a tile against
# every Gaussian binned there, so on CPU smaller tiles waste less: 5k Gaussians at 128 px, forward +
# backward, one thread: 398 ms with 16 px tiles, 81 ms with 4 px. The image does not depend on it:
# a Gaussian's 3.33-sigma box, which decides its tiles, already bounds where alpha >= 1/255.
CPU_TILE_SIZE = 4


def _project(means, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane):  # noqa: ANN001, ANN202
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    return _fully_fused_projection(means, covars, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane,
                                   far_plane=far_plane)  # fmt: skip


def _view_colors(means: torch.Tensor, colors: torch.Tensor, viewmats: torch.Tensor, sh_degree: int | None,
                 num_cameras: int) -> torch.Tensor:  # fmt: skip
    """Per camera colours [..., C, N, D]: SH evaluated toward each camera centre (gsplat's +0.5
    offset and clamp), or the same colours for every camera."""
    if sh_degree is None:
        return colors[..., None, :, :].expand(*colors.shape[:-2], num_cameras, *colors.shape[-2:])
    from gsplat.cuda._torch_impl import _spherical_harmonics

    campos = torch.linalg.inv(viewmats)[..., :3, 3]  # [..., C, 3]
    dirs = means[..., None, :, :] - campos[..., :, None, :]  # [..., C, N, 3]
    coeffs = colors[..., None, :, :, :].expand(*dirs.shape[:-1], *colors.shape[-2:])
    return torch.clamp_min(_spherical_harmonics(sh_degree, dirs, coeffs) + 0.5, 0.0)


def rasterization(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    tile_size: int | None = None,
    backgrounds: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    if backend not in BACKENDS:
        raise ValueError(f"rasterization backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "gsplat" or (backend == "auto" and means.is_cuda):
        import gsplat

        return gsplat.rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                                    near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, sh_degree=sh_degree,
                                    tile_size=tile_size or 16, backgrounds=backgrounds, packed=False)  # fmt: skip
    batch = means.shape[:-2]
    num_cameras = viewmats.shape[-3]
    radii, means2d, depths, conics, _ = _project(means, quats, scales, viewmats, Ks, width, height, eps2d,
                                                 near_plane, far_plane)  # fmt: skip
    view_colors = _view_colors(means, colors, viewmats, sh_degree, num_cameras)
    view_opacities = opacities[..., None, :].expand(*batch, num_cameras, opacities.shape[-1])
    n, d = means.shape[-2], view_colors.shape[-1]
    rgb, alpha = composite(means2d.reshape(-1, n, 2), conics.reshape(-1, n, 3), view_opacities.reshape(-1, n),
                           view_colors.reshape(-1, n, d), radii.reshape(-1, n, 2), depths.reshape(-1, n), width,
                           height, tile_size or CPU_TILE_SIZE)  # fmt: skip
    rgb = rgb.reshape(*batch, num_cameras, height, width, d)
    alpha = alpha.reshape(*batch, num_cameras, height, width, 1)
    if backgrounds is not None:
        rgb = rgb + (1.0 - alpha) * backgrounds[..., None, None, :]
    return rgb, alpha, {"radii": radii, "means2d": means2d, "depths": depths, "conics": conics}
