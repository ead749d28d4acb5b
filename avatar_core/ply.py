"""Gaussian avatars as ``.ply`` files in the standard 3DGS layout that splat viewers open.

Vertex fields: x y z, f_dc_0..2, f_rest_* (channel-major, as the reference
3DGS code writes them), opacity (logit), scale_0..2 (log), rot_0..3 (w x y z). Writing goes
through gsplat's exporter (after refusing non-finite values, which it would silently drop);
reading checks the fields and says which are missing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from avatar_core.gaussians import Gaussians
from dreamer_core.errors import PipelineInputError
from dreamer_core.io import write_bytes_atomic

REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3")  # fmt: skip


def save_ply(path: str | os.PathLike[str], gaussians: Gaussians) -> Path:
    from gsplat import export_splats

    g = Gaussians(**{k: v.detach().float().cpu() for k, v in gaussians.tensors().items()})
    g.check_finite(f"writing {path}")
    data = export_splats(g.means, g.log_scales, g.quats, g.opacity_logits, g.sh[:, :1], g.sh[:, 1:], format="ply")
    write_bytes_atomic(path, data)
    return Path(path)


def load_ply(path: str | os.PathLike[str]) -> Gaussians:
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(f"{path}: no such .ply file")
    try:
        ply = PlyData.read(str(path))
        vertex = ply["vertex"].data
    except Exception as e:  # plyfile raises several types for truncated / foreign files
        raise PipelineInputError(
            f"{path}: not a readable .ply file with a vertex element ({e}); the file is damaged or not a splat: "
            "export it again (python -m avatar_core.demo writes one)"
        ) from e
    names = vertex.dtype.names or ()
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise PipelineInputError(f"{path}: not a 3D Gaussian splat file, missing vertex fields {missing}")
    rest = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: int(n.rsplit("_", 1)[1]))
    k = 1 + len(rest) // 3
    if len(rest) % 3 or math.isqrt(k) ** 2 != k:
        raise PipelineInputError(f"{path}: {len(rest)} f_rest_* fields do not form a whole SH degree")

    def cols(keys: list[str] | tuple[str, ...]) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(vertex[n], dtype=np.float32) for n in keys], -1))

    n = len(vertex)
    dc = cols(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None]
    extra = cols(rest).reshape(n, 3, k - 1).transpose(1, 2) if rest else torch.zeros(n, 0, 3)
    g = Gaussians(means=cols(["x", "y", "z"]), log_scales=cols(["scale_0", "scale_1", "scale_2"]),
                  quats=cols(["rot_0", "rot_1", "rot_2", "rot_3"]), opacity_logits=cols(["opacity"])[:, 0],
                  sh=torch.cat([dc, extra], 1))  # fmt: skip
    try:
        g.check_finite(str(path))
    except ValueError as e:
        raise PipelineInputError(str(e)) from e
    return g
