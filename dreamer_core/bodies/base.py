"""The ``BodyModel`` interface that everything downstream (poses, rendering, HMR, GST) uses.

Parameters are a dict of batched tensors in one shared convention (see ``skeleton``):
``global_orient`` [B, 3], ``body_pose`` [B, 21, 3] (axis-angle, SMPL-X body joints), ``shape``
[B, S] (backend specific: anny phenotypes in [0, 1], SMPL betas) and optional ``transl`` [B, 3].
Outputs are in SMPL's world frame, metres, pelvis at the origin in the rest pose.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from dreamer_core.bodies.skeleton import (
    JOINT_NAMES,
    NUM_BODY_JOINTS,
    PART_NAMES,
    SKELETON_SLICE,
    a_pose_body_pose,
)
from dreamer_core.errors import PipelineInputError


@dataclass(frozen=True)
class ParamSpec:
    """Name, per-sample shape and inclusive value bounds of one body parameter."""

    name: str
    shape: tuple[int, ...]
    low: float
    high: float
    default: float = 0.0


@dataclass
class BodyOutput:
    vertices: torch.Tensor  # [B, V, 3]
    joints: torch.Tensor  # [B, J, 3], order = skeleton.JOINT_NAMES

    @property
    def skeleton(self) -> torch.Tensor:
        """The 22 skeleton joints [B, 22, 3] (pelvis first)."""
        return self.joints[:, SKELETON_SLICE]


class BodyModel(ABC):
    """A parametric body. Subclasses convert to the shared world frame inside ``forward``."""

    name: str
    joint_names: tuple[str, ...] = JOINT_NAMES
    part_names: tuple[str, ...] = PART_NAMES

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self._canonical: torch.Tensor | None = None

    # --- what a subclass provides -------------------------------------------------------------
    @property
    @abstractmethod
    def faces(self) -> torch.Tensor:
        """[F, 3] int64 triangle indices."""

    @property
    @abstractmethod
    def num_shape_params(self) -> int: ...

    @property
    @abstractmethod
    def shape_bounds(self) -> tuple[float, float]: ...

    @property
    @abstractmethod
    def shape_default(self) -> float: ...

    @property
    @abstractmethod
    def part_labels(self) -> np.ndarray:
        """[V] int index into ``part_names`` per vertex."""

    @abstractmethod
    def _forward(self, global_orient: torch.Tensor, body_pose: torch.Tensor, shape: torch.Tensor) -> BodyOutput:
        """Posed vertices and joints with the pelvis at the origin (no translation)."""

    # --- shared behaviour ------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return int(self.part_labels.shape[0])

    @property
    def param_spec(self) -> dict[str, ParamSpec]:
        low, high = self.shape_bounds
        return {
            "global_orient": ParamSpec("global_orient", (3,), -math.pi, math.pi),
            "body_pose": ParamSpec("body_pose", (NUM_BODY_JOINTS, 3), -math.pi, math.pi),
            "shape": ParamSpec("shape", (self.num_shape_params,), low, high, self.shape_default),
            "transl": ParamSpec("transl", (3,), -1e3, 1e3),
        }

    def default_params(self, batch_size: int = 1) -> dict[str, torch.Tensor]:
        return {
            name: torch.full((batch_size, *spec.shape), spec.default, device=self.device)
            for name, spec in self.param_spec.items()
        }

    def validate_params(self, params: dict[str, torch.Tensor]) -> int:
        """Check names, shapes, finiteness and bounds; return the batch size."""
        spec = self.param_spec
        unknown = set(params) - set(spec)
        if unknown:
            raise PipelineInputError(
                f"{self.name}: unknown body parameters {sorted(unknown)}; expected a subset of {sorted(spec)}"
            )
        batch = None
        for name, value in params.items():
            s = spec[name]
            if value.ndim != len(s.shape) + 1 or tuple(value.shape[1:]) != s.shape:
                raise PipelineInputError(
                    f"{self.name}: parameter {name!r} has shape {tuple(value.shape)}, "
                    f"expected [batch, {', '.join(map(str, s.shape))}]"
                )
            if batch is None:
                batch = value.shape[0]
            elif value.shape[0] != batch:
                raise PipelineInputError(f"{self.name}: parameter {name!r} has batch {value.shape[0]}, others {batch}")
            if not torch.isfinite(value).all():
                rows = torch.nonzero(~torch.isfinite(value).flatten(1).all(1)).flatten()[:5].tolist()
                raise PipelineInputError(
                    f"{self.name}: parameter {name!r} contains NaN or inf (batch rows {rows}); drop or repair "
                    "those poses where they come from"
                )
            # Axis-angle vectors are bounded by their norm, the rest element-wise.
            mags = value.norm(dim=-1) if name in ("global_orient", "body_pose") else value
            if (mags < s.low - 1e-5).any() or (mags > s.high + 1e-5).any():
                what = "rotation angle" if name in ("global_orient", "body_pose") else "value"
                raise PipelineInputError(
                    f"{self.name}: parameter {name!r} has a {what} outside [{s.low:g}, {s.high:g}] "
                    f"(min {mags.min().item():.4g}, max {mags.max().item():.4g})"
                    + ("; give axis-angle vectors in radians, angle at most pi" if what == "rotation angle" else "")
                )
        if batch is None:
            raise PipelineInputError(f"{self.name}: no parameters given")
        return batch

    def forward(self, params: dict[str, torch.Tensor], validate: bool = True) -> BodyOutput:
        if validate:
            batch = self.validate_params(params)
        else:
            batch = next(iter(params.values())).shape[0]
        full = self.default_params(batch)
        full.update({k: v.to(self.device, torch.float32) for k, v in params.items()})
        out = self._forward(full["global_orient"], full["body_pose"], full["shape"])
        t = full["transl"][:, None, :]
        return BodyOutput(vertices=out.vertices + t, joints=out.joints + t)

    __call__ = forward

    def skeleton_joints(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """The 22 skeleton joints [B, 22, 3] without validation, for training losses.

        Skinning every vertex is most of a body pass, and losses on the skeleton (what MPJPE
        measures) do not need the mesh; backends that can pose the skeleton alone override
        ``_skeleton``."""
        batch = next(iter(params.values())).shape[0]
        full = self.default_params(batch)
        full.update({k: v.to(self.device, torch.float32) for k, v in params.items()})
        return self._skeleton(full["global_orient"], full["body_pose"], full["shape"]) + full["transl"][:, None, :]

    def _skeleton(self, global_orient: torch.Tensor, body_pose: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        return self._forward(global_orient, body_pose, shape).skeleton

    @property
    def canonical_vertices(self) -> torch.Tensor:
        """[V, 3] A-pose vertices at the default shape: the source of PNCC colours."""
        if self._canonical is None:
            params = self.default_params(1)
            params["body_pose"] = torch.tensor([a_pose_body_pose()], device=self.device)
            with torch.no_grad():
                self._canonical = self.forward(params).vertices[0]
        return self._canonical
