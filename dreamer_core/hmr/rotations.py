"""The continuous 6D rotation representation (Zhou et al. 2019): two columns of the matrix,
re-orthonormalised by Gram-Schmidt. Regressing it avoids the discontinuities of axis-angle and
quaternions, which is why HMR2 predicts joint rotations this way."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """[..., 6] -> [..., 3, 3] proper rotations (columns b1, b2, b1 x b2)."""
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = F.normalize(a1, dim=-1, eps=1e-8)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=1e-8)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(rot: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] -> [..., 6]: the first two columns."""
    return torch.cat([rot[..., :, 0], rot[..., :, 1]], dim=-1)
