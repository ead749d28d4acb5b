"""The tiny detector learns: on held-out renders it beats the mean-pose baseline; it saves and
reloads bit-exactly through safetensors; flipping swaps left and right labels."""

import numpy as np
import pytest
import torch

from dreamer_core.datasets.build import BuildReport, RenderSettings, render_samples
from dreamer_core.keypoints.heatmap import HeatmapNet
from dreamer_core.keypoints.train import (
    DetectorTraining,
    evaluate,
    flip,
    mean_pose_baseline,
    train_detector,
)
from dreamer_core.poses.bank import build_pose_bank
from dreamer_core.render.renderer import BodyRenderer

SETTINGS = RenderSettings(image_size=48, supersample=2, focal_range=(800.0, 1600.0), frame_size=1000,
                          distance_range=(3.0, 6.0), pitch_deg=10.0, crop_margin=0.1, min_body_px=32.0,
                          backgrounds=("gradient", "noise", "tiles"), backgrounds_dir="")  # fmt: skip


def to_split(samples):
    return {
        "image": torch.stack([torch.from_numpy(s.image.copy()).permute(2, 0, 1).float() / 255 for s in samples]),
        "mask": torch.stack([torch.from_numpy(s.mask.copy()).float()[None] / 255 for s in samples]),
        "keypoints": torch.tensor(np.array([s.labels["keypoints_2d"][:17] for s in samples]), dtype=torch.float32),
        "bbox": torch.tensor([s.labels["bbox"] for s in samples], dtype=torch.float32),
    }


@pytest.fixture(scope="module")
def data(anny_body):
    from dreamer_core.config import load_params

    pb = load_params(profile="tiny")["pose_bank"]
    pb.update(num_poses=120, candidate_factor=1)
    bank = build_pose_bank(pb, anny_body, seed=3)
    renderer = BodyRenderer(anny_body)
    rows = np.arange(120)
    report = BuildReport()
    train = render_samples(anny_body, renderer, bank, rows[:100].repeat(3), SETTINGS, 1, "t", "tr", True, report, "t")
    test = render_samples(anny_body, renderer, bank, rows[100:].repeat(2), SETTINGS, 2, "h", "te", True, report, "h")
    return to_split(train), to_split(test)


@pytest.mark.slow
def test_detector_beats_mean_pose_on_heldout_renders(data, tmp_path):
    train, test = data
    baseline = mean_pose_baseline(train, test)
    model, metrics = train_detector(train, test, DetectorTraining(steps=120, batch_size=16, lr=2e-3, width=16, seed=0))
    assert metrics["oks"] > baseline["oks"] + 0.03, (metrics, baseline)
    assert metrics["pck"] > baseline["pck"]
    model.save(tmp_path / "det")
    again = evaluate(HeatmapNet.load(tmp_path / "det"), test)
    assert again["oks"] == pytest.approx(metrics["oks"], abs=1e-6)


def test_flip_swaps_sides():
    images = torch.zeros(1, 3, 8, 10)
    images[..., 0] = 1.0
    kps = torch.zeros(1, 17, 3)
    kps[0, 5] = torch.tensor([2.0, 3.0, 2.0])  # left shoulder
    fi, fm, fk = flip(images, torch.zeros(1, 1, 8, 10), kps)
    assert fi[0, 0, 0, -1] == 1.0
    assert torch.allclose(fk[0, 6], torch.tensor([8.0, 3.0, 2.0]))  # now the right shoulder, mirrored


def test_load_missing_detector(tmp_path):
    from dreamer_core.errors import PipelineInputError

    with pytest.raises(PipelineInputError, match="materialize pose_detector"):
        HeatmapNet.load(tmp_path)
