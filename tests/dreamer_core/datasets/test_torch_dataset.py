"""The shard views the detector and generator train from: ``SampleDecoder`` gives the pixels and
labels ``ShardDataset`` gives (images as uint8 until the device), ``label_tensors`` reads the
statistics' fields without an image, and ``sample_stream`` covers each sample once per epoch."""

from __future__ import annotations

import pytest
import torch

from dreamer_core.datasets.shards import ShardError
from dreamer_core.datasets.stream import to_device
from dreamer_core.datasets.torch_dataset import (
    SampleDecoder,
    ShardDataset,
    image_side,
    label_tensors,
    sample_stream,
)
from dreamer_core.keypoints.train import DETECTOR_FIELDS, DetectorTraining, stack_split, train_detector
from tests.dreamer_core.datasets.test_shards import make_sample, write

FIELDS = ("image", "control", "mask", "keypoints", "bbox")


@pytest.fixture
def folder(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    write(shards, [make_sample(i) for i in range(5)], "shard-000000.tar")
    write(shards, [make_sample(i) for i in range(5, 8)], "shard-000001.tar")
    return shards


def test_decoded_fields_equal_the_map_style_dataset(folder):
    stream = sample_stream([folder], FIELDS, batch_size=8, seed=0)
    chunks = [stream.decode(ref) for ref in stream.refs]
    assert all(c[f].dtype == torch.uint8 for c in chunks for f in ("image", "control", "mask"))
    decoded = to_device({f: torch.cat([c[f] for c in chunks]) for f in FIELDS})
    ds = ShardDataset(folder)
    expected = stack_split(ds)
    expected["control"] = torch.stack([ds[i]["control"] for i in range(len(ds))])
    for f in FIELDS:
        assert torch.equal(decoded[f], expected[f]), f
    labels = label_tensors(folder)
    assert torch.equal(labels["keypoints"], expected["keypoints"]) and torch.equal(labels["bbox"], expected["bbox"])
    assert image_side(folder) == 16


def test_one_epoch_of_the_stream_holds_every_sample_once(folder):
    stream = sample_stream([folder], ("keypoints",), batch_size=4, seed=3)
    assert stream.num_samples == 8
    epoch = torch.cat([next(b)["keypoints"] for b in [stream.batches()] for _ in range(2)])
    expected = label_tensors(folder)["keypoints"]
    order = sorted(range(8), key=lambda i: epoch[i].sum().item())
    assert torch.equal(epoch[order], expected[sorted(range(8), key=lambda i: expected[i].sum().item())])


def test_unknown_fields_missing_folders_and_batch_mismatches_are_clear_errors(tmp_path, folder):
    with pytest.raises(ValueError, match="unknown fields"):
        SampleDecoder(("pixels",))
    stream = sample_stream([folder], DETECTOR_FIELDS + ("bbox",), batch_size=4, seed=0)
    with pytest.raises(ValueError, match="batches of 4, the training wants 2"):
        train_detector(stream, {}, DetectorTraining(steps=1, batch_size=2, lr=1e-3, width=8, seed=0))
    with pytest.raises(ShardError, match="no shard index"):
        sample_stream([tmp_path / "absent"], ("image",), batch_size=1, seed=0)
