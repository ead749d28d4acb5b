"""The tiny detector learns: on held-out renders it beats the mean-pose baseline; it saves and
reloads bit-exactly through safetensors; flipping swaps left and right labels."""

import numpy as np
import pytest
import torch

from dreamer_core.datasets.torch_dataset import label_tensors, sample_stream
from dreamer_core.keypoints.heatmap import HeatmapNet
from dreamer_core.keypoints.train import (
    DETECTOR_FIELDS,
    DetectorTraining,
    evaluate,
    flip,
    mean_pose_baseline,
    score,
    train_detector,
)
from tests.helpers.oks_cases import MASK_AREAS, hand_oks, labels, masks_uint8
from tests.helpers.renders import render_train_shards


@pytest.mark.slow
def test_detector_beats_mean_pose_on_heldout_renders(anny_body, tmp_path):
    """Trained as the asset trains it: from a stream of the training shards."""
    test = render_train_shards(anny_body, tmp_path / "train")
    baseline = mean_pose_baseline(label_tensors(tmp_path / "train"), test)
    train = sample_stream([tmp_path / "train"], DETECTOR_FIELDS, batch_size=16, seed=0)
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


def test_heldout_oks_uses_the_label_mask_area():
    """``score`` (the detector's held-out OKS) takes the area from the split's person masks."""
    kp = labels()
    data = {"keypoints": torch.from_numpy(kp), "bbox": torch.tensor([[0.0, 0.0, 40.0, 40.0], [0.0, 0.0, 20.0, 20.0]]),
            "mask": torch.from_numpy(masks_uint8()).float()[:, None] / 255.0}  # fmt: skip
    pred = kp[..., :2] + np.array([4.0, 0.0], np.float32)
    want = (hand_oks(4.0, MASK_AREAS[0]) + hand_oks(4.0, MASK_AREAS[1])) / 2
    assert score(pred, data)["oks"] == pytest.approx(want, rel=1e-9)


def test_evaluation_a_shard_at_a_time_equals_the_split_in_memory(tmp_path):
    """The asset scores held-out shards one at a time (``ShardSplit``); the numbers are those of the
    whole split stacked in memory, and so is the mean-pose baseline from ``heldout_labels``."""
    from dreamer_core.datasets.torch_dataset import ShardDataset, ShardSplit
    from dreamer_core.keypoints.heatmap import HeatmapNetConfig
    from dreamer_core.keypoints.train import heldout_labels, stack_split
    from tests.dreamer_core.datasets.test_shards import make_sample, write

    write(tmp_path, [make_sample(i, size=32) for i in range(5)], "shard-000000.tar")
    write(tmp_path, [make_sample(i, size=32) for i in range(5, 9)], "shard-000001.tar")
    torch.manual_seed(0)
    model = HeatmapNet(HeatmapNetConfig(width=8, depth=1)).eval()
    split, memory = ShardSplit(tmp_path), stack_split(ShardDataset(tmp_path))
    assert len(split) == 9
    streamed, held = evaluate(model, split, batch=4), evaluate(model, memory, batch=4)
    # Batches split at shard boundaries (5 + 4, not 4 + 4 + 1): float32 convolutions of other batch
    # shapes round differently, so the scores agree to float32 precision, not to the bit.
    assert streamed == pytest.approx(held, abs=1e-6) and np.isfinite(streamed["oks"])
    labels = heldout_labels(split)
    assert torch.equal(labels["keypoints"], memory["keypoints"]) and torch.equal(labels["bbox"], memory["bbox"])
    assert mean_pose_baseline(memory, labels) == pytest.approx(mean_pose_baseline(memory, memory), abs=1e-12)
