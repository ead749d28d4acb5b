"""A set of 3D Gaussians in the parameters they are optimised and stored in.

Centres in metres (SMPL world frame), log scales, quaternions (w, x, y, z; any norm), opacity
logits and SH coefficients [N, K, 3] (K = (degree + 1)^2; index 0 is the DC term). These are the
standard 3DGS ``.ply`` fields, so export is a copy and viewers agree with our renders; the
activations (exp, normalise, sigmoid, SH -> RGB) happen where Gaussians are rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

SH_C0 = 0.28209479177387814  # the degree-0 SH basis: rgb = SH_C0 * dc + 0.5


def rgb_to_sh(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh: torch.Tensor) -> torch.Tensor:
    return sh * SH_C0 + 0.5


@dataclass
class Gaussians:
    means: torch.Tensor  # [N, 3]
    log_scales: torch.Tensor  # [N, 3]
    quats: torch.Tensor  # [N, 4] wxyz
    opacity_logits: torch.Tensor  # [N]
    sh: torch.Tensor  # [N, K, 3]

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {"means": (n, 3), "log_scales": (n, 3), "quats": (n, 4), "opacity_logits": (n,)}
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"Gaussians.{name} has shape {tuple(getattr(self, name).shape)}, expected {shape}")
        k = self.sh.shape[1] if self.sh.ndim == 3 else -1
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3 or math.isqrt(k) ** 2 != k:
            raise ValueError(f"Gaussians.sh has shape {tuple(self.sh.shape)}, expected [{n}, (degree + 1)^2, 3]")

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return math.isqrt(self.sh.shape[1]) - 1

    @property
    def scales(self) -> torch.Tensor:
        return self.log_scales.exp()

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def check_finite(self, what: str) -> None:
        """Refuse NaN / inf before they reach a file or a renderer (they would be dropped or
        poison every pixel they touch)."""
        for name, value in self.tensors().items():
            bad = ~torch.isfinite(value)
            if bad.any():
                rows = bad.reshape(len(self), -1).any(-1).nonzero()[:, 0]
                raise ValueError(f"{what}: Gaussians.{name} is not finite for {len(rows)} of {len(self)} Gaussians "
                                 f"(first: {rows[:5].tolist()}); the model or optimiser diverged")  # fmt: skip

    def render(self, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
               backgrounds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Colours [C, H, W, 3] and alphas [C, H, W, 1] from cameras [C, 4, 4] / [C, 3, 3]."""
        from avatar_core.raster import rasterization

        rgb, alpha, _ = rasterization(self.means, self.quats, self.scales, self.opacities, self.sh, viewmats, Ks,
                                      width, height, sh_degree=self.sh_degree, backgrounds=backgrounds)  # fmt: skip
        return rgb, alpha
