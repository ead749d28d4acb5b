"""``anny`` backend: free, ships its assets, works offline; the default body model.

anny is Z up, faces -Y, rests in an A-pose and poses 104 bones. This backend retargets the shared
SMPL-X-style skeleton onto anny's bones and converts everything to SMPL's frame, so nothing
downstream knows which backend it is using.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from dreamer_core.bodies.base import BodyModel, BodyOutput
from dreamer_core.bodies.rotations import axis_angle_to_matrix, rotation_between
from dreamer_core.bodies.skeleton import COCO17, FOOT_KEYPOINTS, SKELETON_JOINTS, SKELETON_PARENTS

# anny (Z up, facing -Y) -> SMPL world (Y up, facing +Z); body left stays +X. p_smpl = M p_anny.
ANNY_TO_SMPL = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# Which anny bones a shared skeleton joint drives. Bones not listed follow their nearest listed
# ancestor rigidly (twist bones, fingers, toes' distal segments, eyes).
JOINT_TO_BONES: dict[str, tuple[str, ...]] = {
    "pelvis": ("root",),
    "left_hip": ("upperleg01.L",),
    "right_hip": ("upperleg01.R",),
    "spine1": ("spine04",),
    "left_knee": ("lowerleg01.L",),
    "right_knee": ("lowerleg01.R",),
    "spine2": ("spine02",),
    "left_ankle": ("foot.L",),
    "right_ankle": ("foot.R",),
    "spine3": ("spine01",),
    "left_foot": tuple(f"toe{i}-1.L" for i in range(1, 6)),
    "right_foot": tuple(f"toe{i}-1.R" for i in range(1, 6)),
    "neck": ("neck01",),
    "left_collar": ("shoulder01.L",),
    "right_collar": ("shoulder01.R",),
    "head": ("head",),
    "left_shoulder": ("upperarm01.L",),
    "right_shoulder": ("upperarm01.R",),
    "left_elbow": ("lowerarm01.L",),
    "right_elbow": ("lowerarm01.R",),
    "left_wrist": ("wrist.L",),
    "right_wrist": ("wrist.R",),
}
# In anny's A-pose the arms hang below the T-pose; their T-pose direction (anny frame) lets us
# measure that offset from the rig itself instead of hard-coding it.
_ARM_T_DIRECTIONS = {"L": (1.0, 0.0, 0.0), "R": (-1.0, 0.0, 0.0)}

PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")


def default_cache_dir() -> Path:
    return Path(os.environ.get("ANNY_CACHE_DIR", Path.home() / ".cache" / "anny"))


class AnnyBody(BodyModel):
    name = "anny"

    def __init__(self, device: str | torch.device = "cpu", cache_dir: str | os.PathLike[str] | None = None):
        super().__init__(device)
        import anny  # heavy import: only when this backend is used
        from anny.paths import set_anny_cache_path

        set_anny_cache_path(Path(cache_dir) if cache_dir else default_cache_dir())
        self.model = anny.Anny().to(dtype=torch.float32, device=self.device)
        if tuple(self.model.phenotype_labels) != PHENOTYPES:
            raise RuntimeError(f"unexpected anny phenotypes {self.model.phenotype_labels}")
        self.keypoints = anny.KeypointsRegressor.coco(self.model).to(self.device)
        order = list(COCO17 + FOOT_KEYPOINTS)
        self._kp_index = torch.tensor([self.keypoints.labels.index(n) for n in order], device=self.device)
        self._m = ANNY_TO_SMPL.to(self.device)
        self._build_retargeting()

    # --- static structure ------------------------------------------------------------------
    def _build_retargeting(self) -> None:
        labels = list(self.model.bone_labels)
        parents = [int(p) for p in self.model.bone_parents]
        bone_joint: dict[int, int] = {}
        for j, name in enumerate(SKELETON_JOINTS):
            for bone in JOINT_TO_BONES[name]:
                bone_joint[labels.index(bone)] = j
        driver = []
        for b in range(len(labels)):
            a = b
            while a not in bone_joint:
                a = parents[a]
            driver.append(bone_joint[a])
        self._parents = torch.tensor(parents)
        self._driver = torch.tensor(driver, device=self.device)
        self._head_bones = [[labels.index(b) for b in JOINT_TO_BONES[n]] for n in SKELETON_JOINTS]

        with torch.no_grad():
            rest = self.model(pose_parameters=None, phenotype_kwargs=None)
        heads = rest["bone_poses"][0, :, :3, 3].cpu()
        # Per bone: rotation taking its T-pose orientation to anny's rest (A-pose) orientation.
        corr = torch.eye(3).repeat(len(labels), 1, 1)
        for side, t_dir in _ARM_T_DIRECTIONS.items():
            upper, lower = labels.index(f"upperarm01.{side}"), labels.index(f"lowerarm01.{side}")
            c = rotation_between(torch.tensor(t_dir), heads[lower] - heads[upper])
            for b in range(len(labels)):
                a = b
                while a != -1 and a != upper:
                    a = parents[a]
                if a == upper:
                    corr[b] = c
        self._corr_inv = corr.transpose(-1, -2).to(self.device)

        idx = self.model.vertex_bone_indices
        w = self.model.vertex_bone_weights
        top_bone = torch.gather(idx, 1, w.argmax(dim=1, keepdim=True))[:, 0].cpu()
        self._part_labels = self._driver.cpu()[top_bone].numpy().astype(np.int64)

    @property
    def faces(self) -> torch.Tensor:
        return self.model.faces.to(torch.int64)

    @property
    def num_shape_params(self) -> int:
        return len(PHENOTYPES)

    @property
    def shape_bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    @property
    def shape_default(self) -> float:
        return 0.5

    @property
    def part_labels(self) -> np.ndarray:
        return self._part_labels

    # --- posing -----------------------------------------------------------------------------
    def pose_parameters(self, global_orient: torch.Tensor, body_pose: torch.Tensor) -> torch.Tensor:
        """Shared-skeleton axis-angle -> anny 'local-ref' delta transforms [B, 104, 4, 4]."""
        batch = global_orient.shape[0]
        local = axis_angle_to_matrix(torch.cat([global_orient[:, None], body_pose], dim=1))
        glob = [local[:, 0]]
        for j in range(1, len(SKELETON_JOINTS)):
            glob.append(glob[SKELETON_PARENTS[j]] @ local[:, j])
        g_smpl = torch.stack(glob, dim=1)  # [B, 22, 3, 3] world rotations relative to the T-pose
        m = self._m
        g_anny = m.T @ g_smpl @ m
        g_bone = g_anny[:, self._driver] @ self._corr_inv  # relative to anny's rest orientation
        parent_rot = g_bone[:, self._parents[1:]]
        delta = torch.cat([g_bone[:, :1], parent_rot.transpose(-1, -2) @ g_bone[:, 1:]], dim=1)
        out = torch.zeros(batch, delta.shape[1], 4, 4, dtype=delta.dtype, device=delta.device)
        out[:, :, :3, :3] = delta
        out[:, :, 3, 3] = 1.0
        return out

    def _forward(self, global_orient: torch.Tensor, body_pose: torch.Tensor, shape: torch.Tensor) -> BodyOutput:
        raw = self.model(
            pose_parameters=self.pose_parameters(global_orient, body_pose),
            phenotype_kwargs=shape,
        )
        m = self._m
        vertices = raw["vertices"] @ m.T
        kps = self.keypoints(raw)[:, self._kp_index] @ m.T
        return BodyOutput(vertices=vertices, joints=torch.cat([kps, self._bone_heads(raw["bone_poses"])], dim=1))

    def _bone_heads(self, bone_poses: torch.Tensor) -> torch.Tensor:
        heads = bone_poses[..., :3, 3]
        return torch.stack([heads[:, b].mean(dim=1) for b in self._head_bones], dim=1) @ self._m.T

    def _skeleton(self, global_orient: torch.Tensor, body_pose: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        """Rest bones from the phenotype, then forward kinematics; no skinning (~4x cheaper
        forward + backward than ``_forward`` at batch 48)."""
        model = self.model
        pose = self.pose_parameters(global_orient, body_pose)
        _, phenotype, local, face = model.get_tensor_inputs(pose, shape, None, None)
        rest = model.get_rest_model(model._get_phenotype_blendshape_coefficients(phenotype, local, face))
        _, bone_poses = model.get_bone_transforms(pose, rest["rest_bone_poses"])
        return self._bone_heads(bone_poses)

    def sample_shapes(self, n: int, generator: torch.Generator, age_range: tuple[float, float]) -> torch.Tensor:
        """Realistic phenotypes (anny's WHO-calibrated distribution) for ages in ``age_range``."""
        from anny.shape_distribution import SimpleShapeDistribution

        dist = SimpleShapeDistribution(
            self.model,
            morphological_age_distribution=torch.distributions.Uniform(
                torch.tensor(float(age_range[0])), torch.tensor(float(age_range[1]))
            ),
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            _, kwargs = dist.sample(n)
        sample = torch.stack([torch.as_tensor(kwargs[k]).reshape(n) for k in PHENOTYPES], dim=-1)
        return sample.to(torch.float32).clamp(0.0, 1.0).cpu()
