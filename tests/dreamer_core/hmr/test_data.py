"""HMR sets read from shard folders keep their labels true to the pixels after resizing: the
sample's 3D joints projected with the rescaled intrinsics land on the rescaled keypoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer_core.datasets.build import write_samples
from dreamer_core.datasets.shards import Sample
from dreamer_core.errors import PipelineInputError
from dreamer_core.hmr.camera import project
from dreamer_core.hmr.data import load_folder, load_samples, set_size
from tests.helpers.renders import render_poses


@pytest.fixture(scope="module")
def samples(anny_body):
    return render_poses(anny_body, 6, seed=4, purpose="hmr-data")


def test_resized_set_keeps_labels_on_the_pixels(samples, tmp_path):
    write_samples(tmp_path, samples, 4, "test")
    data = load_folder(tmp_path, 32)
    assert set_size(data) == 6 and data["image"].shape == (6, 3, 32, 32)
    assert 0.0 <= float(data["image"].min()) and float(data["image"].max()) <= 1.0
    uv = project(data["joints_3d"], data["K"])
    kp = data["keypoints_2d"]
    vis = kp[..., 2] > 0
    np.testing.assert_allclose(uv[vis], kp[..., :2][vis], atol=1e-2)
    # Resizing moves pixels and labels together: the 48 and 32 px versions agree block by block.
    full = load_folder(tmp_path, 48)
    np.testing.assert_allclose(full["keypoints_2d"][..., :2] * (32 / 48), kp[..., :2], rtol=1e-6)
    torch.testing.assert_close(
        torch.nn.functional.avg_pool2d(full["image"], 3, 3), torch.nn.functional.avg_pool2d(data["image"], 2, 2),
        atol=0.08, rtol=0,
    )  # fmt: skip


def test_key_subset_and_clear_errors(samples, tmp_path):
    write_samples(tmp_path, samples, 4, "test")
    keys = {samples[1].key, samples[4].key}
    assert set_size(load_folder(tmp_path, 32, keys)) == 2
    control_only = [Sample(s.key, None, s.control, s.mask, s.labels) for s in samples[:2]]
    with pytest.raises(PipelineInputError, match="no image"):
        load_samples(control_only, 32, "controls")
    with pytest.raises(PipelineInputError, match="no samples"):
        load_samples([], 32, "empty set")


def test_a_split_scored_a_shard_at_a_time_is_the_loaded_split(samples, tmp_path, anny_body):
    """``FolderSplit`` (what the benchmark scores its rendered test split from) holds the samples
    ``load_folder`` loads, in order, and evaluate_hmr gives the same errors on both (batches split
    at shard boundaries round differently in float32)."""
    from dreamer_core.hmr.data import FolderSplit, folder_labels, set_chunks, set_labels
    from dreamer_core.hmr.model import HMR, HMRConfig
    from dreamer_core.hmr.train import evaluate_hmr, evaluate_models

    write_samples(tmp_path, samples, 4, "test")  # shards of 4 and 2
    split, whole = FolderSplit(tmp_path, 32), load_folder(tmp_path, 32)
    chunks = list(set_chunks(split))
    assert [len(c["image"]) for c in chunks] == [4, 2] and set_size(split) == 6
    assert all(torch.equal(torch.cat([c[k] for c in chunks]), whole[k]) for k in whole)
    labels, direct = set_labels(split), folder_labels(tmp_path)
    assert all(torch.equal(labels[k], direct[k]) for k in ("joints_3d", "global_orient_cam"))
    torch.manual_seed(0)
    model = HMR(HMRConfig(image_size=32, width=8, dim=32, heads=2, decoder_layers=1,
                          num_shape=anny_body.num_shape_params)).eval()  # fmt: skip
    a, b = evaluate_hmr(model, anny_body, split, batch=3), evaluate_hmr(model, anny_body, whole, batch=3)
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-3 for k in a), (a, b)  # mm
    # the benchmark scores every model on each batch of a split read once: the same numbers
    other = HMR(model.cfg).eval()  # untrained heads predict the mean: perturb every weight
    with torch.no_grad():
        for w, p in zip(model.parameters(), other.parameters(), strict=True):
            p.copy_(w + 0.05 * torch.randn_like(w))
    both = evaluate_models({"hmr": model, "other": other}, anny_body, split, batch=3)
    assert both["hmr"] == a and both["other"] == evaluate_hmr(other, anny_body, split, batch=3)
    assert both["hmr"] != both["other"]
    (tmp_path / "unwritten").mkdir()
    with pytest.raises(PipelineInputError, match="no shard index"):
        FolderSplit(tmp_path / "unwritten", 32)


def test_streamed_training_set_matches_the_set_in_memory(samples, tmp_path, anny_body):
    """What training streams (uint8 images, mean parameters from the labels alone) is the set
    ``load_folder`` loads, sample for sample, and gives the model the same mean start."""
    from dreamer_core.hmr.data import folder_labels, training_mean, training_stream
    from dreamer_core.hmr.model import HMR, HMRConfig
    from dreamer_core.hmr.train import set_mean_from

    write_samples(tmp_path, samples, 4, "train")
    whole = load_folder(tmp_path, 32)
    stream = training_stream([str(tmp_path)], {}, 32, batch_size=6, seed=0)
    batch = next(stream.batches())
    assert stream.num_samples == 6 and batch["image"].dtype == torch.uint8
    torch.testing.assert_close(folder_labels(tmp_path)["joints_3d"], whole["joints_3d"])  # labels only, same order
    order = torch.argsort(batch["joints_3d"][:, 0, 0])
    expect = torch.argsort(whole["joints_3d"][:, 0, 0])
    torch.testing.assert_close(batch["joints_3d"][order], whole["joints_3d"][expect])
    torch.testing.assert_close(batch["image"][order], (whole["image"][expect] * 255).round().to(torch.uint8))

    def model():
        torch.manual_seed(0)
        return HMR(HMRConfig(image_size=32, width=4, depth=2, dim=16, heads=2, decoder_layers=1,
                             num_shape=anny_body.num_shape_params))  # fmt: skip

    streamed, loaded = model(), model()
    training_mean(stream, {}).apply(streamed)
    set_mean_from(loaded, whole)
    for name in ("mean_pose", "mean_shape", "mean_cam"):
        torch.testing.assert_close(getattr(streamed, name), getattr(loaded, name), atol=1e-5, rtol=1e-5)


def test_ranks_sum_their_own_shards_and_all_reduce_gives_the_whole_mean(samples, tmp_path):
    """What each rank of a torchrun sums (every world-th shard) adds up to the whole set's sums;
    ``all_reduce`` (here a one-process gloo group) keeps them as they are and in their shapes."""
    import torch.distributed as dist

    from dreamer_core.hmr.data import training_mean, training_stream

    write_samples(tmp_path / "train", samples, 2, "train")  # 3 shards
    stream = training_stream([str(tmp_path / "train")], {}, 32, batch_size=2, seed=0)
    whole = training_mean(stream, {})
    parts = [training_mean(stream, {}, rank, 2) for rank in (0, 1)]
    assert parts[0].count + parts[1].count == whole.count == 6
    torch.testing.assert_close(parts[0].rot + parts[1].rot, whole.rot)
    torch.testing.assert_close(parts[0].cam + parts[1].cam, whole.cam)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        reduced = training_mean(stream, {}).all_reduce()
    finally:
        dist.destroy_process_group()
    assert reduced.count == 6 and reduced.rot.shape == whole.rot.shape
    for name in ("rot", "shape", "cam"):
        torch.testing.assert_close(getattr(reduced, name), torch.as_tensor(getattr(whole, name), dtype=torch.float64))
