"""Multi-view subjects from ``reference_renders/multiview``: every calibrated view of a subject
(image, person mask, K, world -> camera matrix, camera-frame joints) stacked per subject."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from dreamer_core.datasets.shards import iter_folder
from dreamer_core.errors import PipelineInputError

Views = dict[str, torch.Tensor]


def load_multiview(folder: str | Path) -> Views:
    """images [S, V, 3, H, W] and masks [S, V, 1, H, W] in [0, 1], K [S, V, 3, 3], viewmats
    [S, V, 4, 4], joints_3d [S, V, J, 3], heldout [S] (subjects drawn from held-out poses)."""
    by_subject: dict[int, list] = defaultdict(list)
    for s in iter_folder(folder):
        if s.image is None or s.mask is None:
            raise PipelineInputError(f"{folder}: sample {s.key} has no image or mask; re-materialize reference_renders")
        by_subject[int(s.labels["subject"])].append(s)
    if not by_subject:
        raise PipelineInputError(f"{folder}: no multi-view samples; materialize reference_renders")
    views = {len(v) for v in by_subject.values()}
    if len(views) != 1:
        raise PipelineInputError(f"{folder}: subjects have different numbers of views {sorted(views)}")
    out: dict[str, list] = defaultdict(list)
    for subject in sorted(by_subject):
        samples = sorted(by_subject[subject], key=lambda s: int(s.labels["view"]))
        out["images"].append(np.stack([s.image for s in samples]))
        out["masks"].append(np.stack([s.mask for s in samples]))
        out["K"].append(np.array([s.labels["K"] for s in samples], dtype=np.float32))
        vm = np.tile(np.eye(4, dtype=np.float32), (len(samples), 1, 1))
        vm[:, :3, :3] = [s.labels["R"] for s in samples]
        vm[:, :3, 3] = [s.labels["t"] for s in samples]
        out["viewmats"].append(vm)
        out["joints_3d"].append(np.array([s.labels["joints_3d"] for s in samples], dtype=np.float32))
        out["heldout"].append(bool(samples[0].labels["heldout"]))
    images = torch.from_numpy(np.stack(out["images"])).permute(0, 1, 4, 2, 3).float().contiguous() / 255.0
    masks = (torch.from_numpy(np.stack(out["masks"])).float() / 255.0)[:, :, None]
    return {
        "images": images,
        "masks": masks,
        "K": torch.from_numpy(np.stack(out["K"])),
        "viewmats": torch.from_numpy(np.stack(out["viewmats"])),
        "joints_3d": torch.from_numpy(np.stack(out["joints_3d"])),
        "heldout": torch.tensor(out["heldout"]),
    }


def subjects(views: Views, heldout: bool) -> Views:
    keep = views["heldout"] == heldout
    if not keep.any():
        which = "held-out" if heldout else "training"
        raise PipelineInputError(f"no {which} multi-view subjects; raise reference_renders.multiview_subjects")
    return {k: v[keep] for k, v in views.items()}


def on_background(images: torch.Tensor, masks: torch.Tensor, background: float) -> torch.Tensor:
    """The person over a flat background: what the Gaussians (which model only the person) render."""
    return images * masks + background * (1.0 - masks)
