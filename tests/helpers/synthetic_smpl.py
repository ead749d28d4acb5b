"""Build a small SMPL model file in smplx's format (arrays only, no licensed data).

Each of the 24 joints owns a cluster of vertices along its bone, rigidly skinned to it, plus one
vertex exactly at the joint so that the joint regressor is a one-hot pick. The skeleton is taken
from anny's T-pose so that both backends can be compared joint for joint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from dreamer_core.bodies.skeleton import SKELETON_SLICE

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
PER_JOINT = 13  # 1 joint vertex + 3 points along the bone x 4 radial offsets


def smpl_arrays(joints24: np.ndarray, num_betas: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    children = {j: [c for c, p in enumerate(SMPL_PARENTS) if p == j] for j in range(24)}
    verts, weights_idx, faces = [], [], []
    for j in range(24):
        base = len(verts)
        tip = joints24[children[j][0]] if children[j] else joints24[j] + (joints24[j] - joints24[SMPL_PARENTS[j]]) * 0.5
        axis = tip - joints24[j]
        perp = np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 * np.linalg.norm(axis) else [1.0, 0.0, 0.0])
        perp = perp / (np.linalg.norm(perp) + 1e-12) * 0.02
        perp2 = np.cross(axis / (np.linalg.norm(axis) + 1e-12), perp)
        verts.append(joints24[j])
        for f in (0.25, 0.5, 0.75):
            for off in (perp, -perp, perp2, -perp2):
                verts.append(joints24[j] + f * axis + off)
        weights_idx += [j] * PER_JOINT
        for k in range(1, PER_JOINT - 2):
            faces.append([base + k, base + k + 1, base + k + 2])
    v = np.asarray(verts, dtype=np.float64)
    n = len(v)
    weights = np.zeros((n, 24))
    weights[np.arange(n), weights_idx] = 1.0
    regressor = np.zeros((24, n))
    regressor[np.arange(24), np.arange(24) * PER_JOINT] = 1.0
    kintree = np.array([[2**32 - 1 if p < 0 else p for p in SMPL_PARENTS], list(range(24))], dtype=np.int64)
    return {
        "v_template": v,
        "f": np.asarray(faces, dtype=np.int64),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree,
        "shapedirs": rng.normal(0, 0.005, (n, 3, num_betas)),
        "posedirs": rng.normal(0, 0.001, (n, 3, 207)),
    }


def vertex_ids_for(num_vertices_per_joint: int = PER_JOINT) -> dict[str, int]:
    head, lfoot, rfoot, lhand, rhand = 15, 10, 11, 22, 23
    at = lambda j, k=0: j * num_vertices_per_joint + k  # noqa: E731
    ids = {"nose": at(head, 1), "reye": at(head, 2), "leye": at(head, 3), "rear": at(head, 4), "lear": at(head, 5),
           "LBigToe": at(lfoot, 1), "LSmallToe": at(lfoot, 2), "LHeel": at(7, 3),
           "RBigToe": at(rfoot, 1), "RSmallToe": at(rfoot, 2), "RHeel": at(8, 3)}  # fmt: skip
    for side, j in (("l", lhand), ("r", rhand)):
        for k, tip in enumerate(("thumb", "index", "middle", "ring", "pinky")):
            ids[side + tip] = at(j, k + 1)
    return ids


def anny_tpose_joints(anny_body) -> np.ndarray:
    with torch.no_grad():
        skel = anny_body.forward(anny_body.default_params(1)).joints[0, SKELETON_SLICE].numpy()
    hands = [skel[20] + (skel[20] - skel[18]) * 0.4, skel[21] + (skel[21] - skel[19]) * 0.4]
    return np.concatenate([skel, np.asarray(hands)]).astype(np.float64)


def write_synthetic_smpl(folder: Path, anny_body, name: str = "SMPL_NEUTRAL.npz") -> Path:
    arrays = smpl_arrays(anny_tpose_joints(anny_body))
    path = Path(folder) / name
    np.savez(path, **arrays)
    (Path(folder) / "vertex_ids.json").write_text(json.dumps(vertex_ids_for()))
    return path
