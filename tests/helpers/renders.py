"""Small real render sets (anny + Warp) for tests that train models: a few hundred samples at
48 px take seconds, so learning tests run on real pixels rather than on made-up arrays."""

from __future__ import annotations

import numpy as np
import torch

from dreamer_core.config import RenderSettings, load_settings
from dreamer_core.datasets.build import BuildReport, render_samples
from dreamer_core.poses.bank import build_pose_bank
from dreamer_core.render.renderer import BodyRenderer

SETTINGS = RenderSettings(image_size=48, supersample=2, focal_range=(800.0, 1600.0), frame_size=1000,
                          distance_range=(3.0, 6.0), pitch_deg=10.0, crop_margin=0.1, min_body_px=32.0,
                          backgrounds=("gradient", "noise", "tiles"), backgrounds_dir="")  # fmt: skip


def small_bank(anny_body, num_poses: int, seed: int):
    """The tiny profile's pose-bank sampler at a test's size (no candidate oversampling)."""
    pb = load_settings(profile="tiny").pose_bank.replace(num_poses=num_poses, candidate_factor=1)
    return build_pose_bank(pb, anny_body, seed=seed)


def render_poses(anny_body, num_poses: int, seed: int, purpose: str, images: bool = True, settings=SETTINGS):
    """One labelled sample per pose of a fresh ``small_bank`` (real renders through the pipeline's
    ``render_samples``)."""
    bank = small_bank(anny_body, max(num_poses, 2), seed)  # a bank holds at least 2 poses
    return render_samples(anny_body, BodyRenderer(anny_body), bank, np.arange(num_poses), settings, seed, purpose,
                          purpose[:2], images, BuildReport(), purpose)  # fmt: skip


def _chw(arrays) -> torch.Tensor:
    return torch.stack([torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255 for a in arrays])


def to_split(samples) -> dict[str, torch.Tensor]:
    return {
        "image": _chw([s.image for s in samples]),
        "control": _chw([s.control for s in samples]),
        "mask": torch.stack([torch.from_numpy(s.mask.copy()).float()[None] / 255 for s in samples]),
        "keypoints": torch.tensor(np.array([s.labels["keypoints_2d"][:17] for s in samples]), dtype=torch.float32),
        "bbox": torch.tensor([s.labels["bbox"] for s in samples], dtype=torch.float32),
    }


def render_train_test(
    anny_body, num_poses: int = 120, heldout: int = 20, train_repeat: int = 3, test_repeat: int = 2
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Train and test splits on disjoint poses (held-out poses), each pose under several cameras
    and appearances."""
    train, test = render_train_test_samples(anny_body, num_poses, heldout, train_repeat, test_repeat)
    return to_split(train), to_split(test)


def render_train_shards(anny_body, folder, per_shard: int = 64, **kwargs) -> dict[str, torch.Tensor]:
    """``render_train_test``'s train split written as shards to ``folder`` (what the assets train
    from); its test split in memory."""
    from dreamer_core.datasets.build import write_samples

    train, test = render_train_test_samples(anny_body, **kwargs)
    write_samples(folder, train, per_shard, "train")
    return to_split(test)


def render_train_test_samples(anny_body, num_poses: int = 120, heldout: int = 20, train_repeat: int = 3,
                              test_repeat: int = 2) -> tuple[list, list]:  # fmt: skip
    bank = small_bank(anny_body, num_poses, seed=3)
    renderer = BodyRenderer(anny_body)
    rows = np.arange(num_poses)
    report = BuildReport()
    split = num_poses - heldout
    train = render_samples(anny_body, renderer, bank, rows[:split].repeat(train_repeat), SETTINGS, 1, "t", "tr", True,
                           report, "t")  # fmt: skip
    test = render_samples(anny_body, renderer, bank, rows[split:].repeat(test_repeat), SETTINGS, 2, "h", "te", True,
                          report, "h")  # fmt: skip
    return train, test


def render_multiview_folder(anny_body, folder, subjects: int = 10, heldout: int = 3, views: int = 4, seed: int = 6):
    """Calibrated multi-view subjects written as reference_renders writes its multiview split."""
    from dreamer_core.datasets.build import render_multiview, write_samples

    bank = small_bank(anny_body, subjects, seed)
    held = np.arange(subjects) >= subjects - heldout
    samples, extra = render_multiview(anny_body, BodyRenderer(anny_body), bank, np.arange(subjects), held, SETTINGS,
                                      views, [10.0], 3.0, seed, BuildReport())  # fmt: skip
    write_samples(folder, samples, 16, "multiview", extra_rows=extra)
    return folder
