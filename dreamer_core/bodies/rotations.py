"""Rotation conversions (batched, differentiable torch) used by body backends and samplers."""

from __future__ import annotations

import torch


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula for [..., 3] axis-angle vectors -> [..., 3, 3] matrices."""
    angle = aa.norm(dim=-1, keepdim=True)
    small = angle < 1e-8
    safe = torch.where(small, torch.ones_like(angle), angle)
    axis = aa / safe
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape[:-1], 3, 3)
    s = torch.sin(angle)[..., None]
    c = torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    rot = eye + s * k + (1 - c) * (k @ k)
    # First-order expansion near zero keeps gradients finite.
    k_small = torch.stack([zero, -aa[..., 2], aa[..., 1], aa[..., 2], zero, -aa[..., 0],
                           -aa[..., 1], aa[..., 0], zero], dim=-1).reshape(k.shape)  # fmt: skip
    return torch.where(small[..., None], eye + k_small, rot)


def matrix_to_axis_angle(rot: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] rotation matrices -> [..., 3] axis-angle with angle in [0, pi]."""
    q = matrix_to_quaternion(rot)
    w, xyz = q[..., :1], q[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, w.abs())
    scale = torch.where(sin_half > 1e-8, angle / sin_half.clamp_min(1e-12), 2.0 * torch.ones_like(angle))
    return torch.sign(w + (w == 0).to(w.dtype)) * xyz * scale


def matrix_to_quaternion(rot: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] -> [..., 4] unit quaternions (w, x, y, z), numerically stable branch choice."""
    m = rot
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2],
                         m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22,
                         m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                         1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                         m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )  # fmt: skip
    diag = torch.stack([m00 + m11 + m22, m00, m11, m22], -1)
    best = diag.argmax(-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    return q / q.norm(dim=-1, keepdim=True)


def euler_xyz_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """[..., 3] angles (radians) -> R = Rz(z) @ Ry(y) @ Rx(x)."""
    x, y, z = angles.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rx = torch.stack([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], -1)
    ry = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], -1)
    rz = torch.stack([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], -1)
    shape = (*angles.shape[:-1], 3, 3)
    return rz.reshape(shape) @ ry.reshape(shape) @ rx.reshape(shape)


def matrix_to_euler_xyz(rot: torch.Tensor) -> torch.Tensor:
    """Inverse of ``euler_xyz_to_matrix`` for |y| < pi/2."""
    y = torch.asin((-rot[..., 2, 0]).clamp(-1.0, 1.0))
    x = torch.atan2(rot[..., 2, 1], rot[..., 2, 2])
    z = torch.atan2(rot[..., 1, 0], rot[..., 0, 0])
    return torch.stack([x, y, z], -1)


def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Smallest rotation taking unit vector ``a`` onto unit vector ``b`` (both [3])."""
    a = a / a.norm()
    b = b / b.norm()
    axis = torch.linalg.cross(a, b)
    s = axis.norm()
    c = torch.dot(a, b)
    if s < 1e-9:
        return torch.eye(3, dtype=a.dtype)
    return axis_angle_to_matrix(axis / s * torch.atan2(s, c))


_AXIS = {"x": 0, "y": 1, "z": 2}


def _order_permutation(order: str, dtype: torch.dtype) -> tuple[torch.Tensor, float]:
    """P maps the order's axes onto x, y, z (P e_order[i] = e_i), and det(P)."""
    perm = torch.zeros(3, 3, dtype=dtype)
    for i, axis in enumerate(order):
        perm[i, _AXIS[axis]] = 1.0
    return perm, float(torch.linalg.det(perm))


def euler_to_matrix(angles: torch.Tensor, order: str = "xyz") -> torch.Tensor:
    """[..., 3] angles about x, y, z (radians), applied first-to-last in ``order``.

    ``order="xyz"`` is ``euler_xyz_to_matrix``. Any Tait-Bryan order is reduced to it by an
    axis permutation, so decomposition (``matrix_to_euler``) has a unique answer whenever the
    middle axis of ``order`` stays within +/- 90 degrees.
    """
    perm, det = _order_permutation(order, angles.dtype)
    permuted = torch.stack([angles[..., _AXIS[a]] for a in order], -1) * det
    return perm.T.to(angles.device) @ euler_xyz_to_matrix(permuted) @ perm.to(angles.device)


def matrix_to_euler(rot: torch.Tensor, order: str = "xyz") -> torch.Tensor:
    perm, det = _order_permutation(order, rot.dtype)
    permuted = matrix_to_euler_xyz(perm.to(rot.device) @ rot @ perm.T.to(rot.device)) * det
    out = torch.empty_like(permuted)
    for i, a in enumerate(order):
        out[..., _AXIS[a]] = permuted[..., i]
    return out
