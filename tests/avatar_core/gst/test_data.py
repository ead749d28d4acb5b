"""Multi-view subjects from shards: the streamed subjects are the loaded ones (every training subject
once per epoch, for any number of workers), only the asked-for subjects are loaded, the flat mesh's
colour accumulated a shard at a time equals the one over all views at once, and shards that split
a subject are refused."""

import dataclasses

import numpy as np
import pytest
import torch

from avatar_core.gst.data import as_float, load_multiview, mean_person_colour_of, subject_refs, subject_stream
from avatar_core.gst.evaluate import mean_person_colour
from dreamer_core.errors import PipelineInputError
from tests.dreamer_core.datasets.test_shards import make_sample, write

VIEWS = 3


def _subjects(folder, subjects: int, per_shard: int, heldout: set[int]):
    """``subjects`` x VIEWS calibrated views, ``per_shard`` samples to a shard, views in reverse order."""
    samples = []
    for s in range(subjects):
        for v in reversed(range(VIEWS)):
            base = make_sample(100 * s + v, size=16)
            camera = [float(s), float(v), 3.0]  # each view its own camera: a misordering shows
            labels = {**base.labels, "subject": s, "view": v, "heldout": s in heldout, "t": camera}
            samples.append(dataclasses.replace(base, key=f"mv{s:03d}-{v}", labels=labels))
    for i in range(0, len(samples), per_shard):
        write(folder, samples[i : i + per_shard], f"shard-{i // per_shard:06d}.tar")
    return samples


def test_loaded_subjects_are_stacked_by_subject_and_view(tmp_path):
    samples = _subjects(tmp_path, subjects=5, per_shard=2 * VIEWS, heldout={1, 4})
    views = load_multiview(tmp_path)
    assert views["subject"].tolist() == [0, 1, 2, 3, 4] and views["heldout"].tolist() == [0, 1, 0, 0, 1]
    by_key = {s.key: s for s in samples}
    for s in range(5):
        for v in range(VIEWS):
            src = by_key[f"mv{s:03d}-{v}"]
            assert torch.equal(views["images"][s, v], torch.from_numpy(src.image).permute(2, 0, 1).float() / 255.0)
            assert torch.equal(views["masks"][s, v, 0], torch.from_numpy(src.mask).float() / 255.0)
            assert torch.equal(views["viewmats"][s, v, :3, 3], torch.tensor(src.labels["t"], dtype=torch.float32))
    held = load_multiview(tmp_path, heldout=True)
    assert held["subject"].tolist() == [1, 4]
    assert all(torch.equal(held[k], views[k][[1, 4]]) for k in views)
    assert load_multiview(tmp_path, heldout=False)["subject"].tolist() == [0, 2, 3]


def test_stream_serves_every_training_subject_once_per_epoch_for_any_workers(tmp_path):
    _subjects(tmp_path, subjects=7, per_shard=2 * VIEWS, heldout={3})
    training = load_multiview(tmp_path, heldout=False)
    runs = []
    for workers in (0, 2):
        it = subject_stream(tmp_path, subjects_per_step=3, seed=5, workers=workers).batches()
        runs.append([next(it) for _ in range(4)])  # 12 subjects: two epochs of 6
    for a, b in zip(*runs, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    served = torch.cat([b["subject"] for b in runs[0]])
    assert sorted(served[:6].tolist()) == sorted(served[6:].tolist()) == [0, 1, 2, 4, 5, 6]
    first = as_float(runs[0][0])
    rows = [training["subject"].tolist().index(s) for s in first["subject"].tolist()]
    assert runs[0][0]["images"].dtype == torch.uint8
    assert all(torch.equal(first[k], training[k][rows]) for k in training)
    resumed = next(subject_stream(tmp_path, 3, seed=5).batches(start_step=2))
    assert all(torch.equal(resumed[k], runs[0][2][k]) for k in resumed)


def test_flat_mesh_colour_a_shard_at_a_time_equals_all_views_at_once(tmp_path):
    _subjects(tmp_path, subjects=6, per_shard=VIEWS, heldout={0})
    whole = mean_person_colour(load_multiview(tmp_path, heldout=False))
    torch.testing.assert_close(mean_person_colour_of(tmp_path), whole, atol=1e-6, rtol=1e-6)


def test_a_subject_split_across_shards_or_no_subject_to_load_is_an_error(tmp_path):
    (tmp_path / "split").mkdir()
    _subjects(tmp_path / "split", subjects=3, per_shard=VIEWS + 1, heldout=set())
    with pytest.raises(PipelineInputError, match="subject 1 has views in shard-000000.tar and shard-000001.tar"):
        subject_refs(tmp_path / "split")
    (tmp_path / "train_only").mkdir()
    _subjects(tmp_path / "train_only", subjects=2, per_shard=VIEWS, heldout=set())
    with pytest.raises(PipelineInputError, match="no held-out multi-view subjects"):
        load_multiview(tmp_path / "train_only", heldout=True)
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty", [], "shard-000000.tar")
    with pytest.raises(PipelineInputError, match="no multi-view samples"):
        subject_refs(tmp_path / "empty")


def test_only_the_asked_for_subjects_are_decoded_from_a_shard(tmp_path):
    _subjects(tmp_path, subjects=2, per_shard=2 * VIEWS, heldout={1})
    refs, decoder = subject_refs(tmp_path, heldout=False)
    assert [r.num_samples for r in refs] == [1]
    chunk = decoder(refs[0])
    assert chunk["subject"].tolist() == [0] and chunk["images"].shape == (1, VIEWS, 3, 16, 16)
    assert np.array_equal(chunk["K"][0, 0].numpy(), np.eye(3, dtype=np.float32))


def test_a_limit_loads_the_first_subjects_and_unequal_rings_are_refused(tmp_path):
    _subjects(tmp_path, subjects=6, per_shard=2 * VIEWS, heldout={1, 3, 4})
    assert load_multiview(tmp_path, heldout=True, limit=2)["subject"].tolist() == [1, 3]
    assert load_multiview(tmp_path, limit=3)["subject"].tolist() == [0, 1, 2]
    (tmp_path / "short").mkdir()
    samples = _subjects(tmp_path / "short", subjects=2, per_shard=2 * VIEWS, heldout=set())
    for f in (tmp_path / "short").iterdir():
        f.unlink()
    write(tmp_path / "short", samples[:-1], "shard-000000.tar")  # subject 1 lost a view
    with pytest.raises(PipelineInputError, match=r"different numbers of views \[2, 3\]"):
        subject_refs(tmp_path / "short")
