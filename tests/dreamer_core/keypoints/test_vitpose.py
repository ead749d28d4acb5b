"""The full-profile ViTPose code path, on a tiny randomly initialised model of the real class
(no download): construction, save/load round trip, and predictions of the right shape mapped
back to input pixels."""

import pytest
import torch
from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

from dreamer_core.errors import PipelineInputError
from dreamer_core.keypoints.vitpose import VitPoseDetector


def save_tiny_vitpose(folder):
    torch.manual_seed(0)
    backbone = VitPoseBackboneConfig(image_size=[64, 48], patch_size=[16, 16], hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, mlp_ratio=2)  # fmt: skip
    config = VitPoseConfig(backbone_config=backbone, id2label={i: str(i) for i in range(17)})
    VitPoseForPoseEstimation(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_vitpose(tmp_path_factory):
    return save_tiny_vitpose(tmp_path_factory.mktemp("vitpose"))


def test_loads_from_folder_and_predicts_in_input_pixels(tiny_vitpose):
    det = VitPoseDetector.from_pretrained(str(tiny_vitpose))
    images = torch.rand(3, 3, 96, 96)
    out = det.predict(images)
    assert out["keypoints"].shape == (3, 17, 2) and out["scores"].shape == (3, 17)
    # Square inputs are scaled to the 48 px width and padded vertically; peaks map back into the image.
    assert (out["keypoints"] >= -1e-4).all() and (out["keypoints"] <= 96 + 1e-4).all()


def test_preparation_keeps_aspect_and_pads(tiny_vitpose):
    det = VitPoseDetector.from_pretrained(str(tiny_vitpose))
    x, scale, (px, py) = det._prepare(torch.ones(1, 3, 96, 96))
    assert x.shape == (1, 3, 64, 48) and scale == pytest.approx(0.5) and (px, py) == (0, 8)


def test_missing_weights_give_a_clear_error(tmp_path):
    with pytest.raises(PipelineInputError, match="cannot load ViTPose"):
        VitPoseDetector.from_pretrained(str(tmp_path / "nothing-here"))


def test_load_detector_dispatches_on_the_folder(tiny_vitpose, tmp_path):
    from dreamer_core.keypoints.detectors import load_detector
    from dreamer_core.keypoints.heatmap import HeatmapNet, HeatmapNetConfig

    assert isinstance(load_detector(tiny_vitpose), VitPoseDetector)
    HeatmapNet(HeatmapNetConfig(width=8)).save(tmp_path / "heat")
    assert isinstance(load_detector(tmp_path / "heat"), HeatmapNet)
    with pytest.raises(PipelineInputError, match="materialize pose_detector"):
        load_detector(tmp_path / "empty")
