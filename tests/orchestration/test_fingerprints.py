"""Reuse stamps and resume keys of the orchestration layer are keyed by content. The HMR and GST
training entry points' fingerprints (which decide "not training again" and key the resume state)
and the stamp of the benchmark's held-out generated test set change when upstream weights or a
shard change with counts and hyper-parameter files unchanged, and stay the same when nothing did."""

from __future__ import annotations

import json

from orchestration.assets.common import file_hash
from orchestration.resources import StorageResource
from tests.helpers.content import write_model, write_shards


def _hmr_spec(tmp_path) -> dict:
    return {"train_set": "mixed", "sources": [str(tmp_path / "rendered"), str(tmp_path / "generated")],
            "out": str(tmp_path / "out"), "hmr": {"image_size": 32, "backbone": "cnn", "width": 8, "steps": 2},
            "seed": 0, "body_model": {"name": "anny"}}  # fmt: skip


def test_hmr_fingerprint_follows_the_shards(tmp_path):
    from orchestration.train_hmr import _fingerprint

    write_shards(tmp_path / "rendered", [1, 2, 3, 4])
    write_shards(tmp_path / "generated", [5, 6])
    key = _fingerprint(_hmr_spec(tmp_path))
    write_shards(tmp_path / "rendered", [1, 2, 3, 4])  # rewritten, same bytes: a rerun reuses / resumes
    assert _fingerprint(_hmr_spec(tmp_path)) == key
    write_shards(tmp_path / "generated", [5, 7])  # one shard's pixels, same sample count
    assert _fingerprint(_hmr_spec(tmp_path)) != key
    swapped = {**_hmr_spec(tmp_path), "sources": _hmr_spec(tmp_path)["sources"][::-1]}
    assert _fingerprint(swapped) != _fingerprint(_hmr_spec(tmp_path))


def _gst_spec(tmp_path) -> dict:
    return {"hmr_checkpoint": str(tmp_path / "hmr"), "multiview": str(tmp_path / "multiview"),
            "out": str(tmp_path / "gst"), "gst": {"num_vertices": 64, "steps": 2}, "seed": 0,
            "body_model": {"name": "anny"}}  # fmt: skip


def test_gst_fingerprint_follows_the_hmr_weights_and_the_views(tmp_path):
    from orchestration.train_gst import _fingerprint

    write_model(tmp_path / "hmr", seed=0)
    write_shards(tmp_path / "multiview", [1, 2, 3, 4])
    key = _fingerprint(_gst_spec(tmp_path))
    write_model(tmp_path / "hmr", seed=0)
    write_shards(tmp_path / "multiview", [1, 2, 3, 4])
    assert _fingerprint(_gst_spec(tmp_path)) == key  # nothing changed: reused, or resumed
    write_model(tmp_path / "hmr", seed=1)  # a retrained HMR: same shapes, config and metrics
    assert _fingerprint(_gst_spec(tmp_path)) != key
    write_model(tmp_path / "hmr", seed=0)
    write_shards(tmp_path / "multiview", [1, 2, 3, 9])
    assert _fingerprint(_gst_spec(tmp_path)) != key


def _upstream(storage: StorageResource, seeds: dict[str, int]) -> None:
    """What the held-out generated test set is made from, each model from its seed."""
    write_model(storage.asset_dir("generator"), seeds["generator"])
    write_model(storage.asset_dir("pose_detector"), seeds["detector"])
    lora = storage.asset_dir("dpo_generator")
    write_model(lora, seeds["lora"], stem="lora")
    (lora / "config.json").unlink()
    (lora / "lora.json").write_text(json.dumps({"rank": 4, "alpha": 4.0, "targets": ["to_q"]}))
    bank = storage.asset_dir("pose_bank")
    (bank / "poses.npz").write_bytes(bytes([seeds["bank"]]))  # any bytes: the stamp only hashes them
    (bank / "poses.parquet").write_bytes(b"table")
    (bank / "summary.json").write_text(json.dumps({"num_poses": 2}))


def test_generated_test_stamp_follows_the_weights(tmp_path):
    from orchestration.assets.benchmark import _generated_test_stamp

    storage = StorageResource(root=str(tmp_path))
    base = {"generator": 0, "lora": 0, "detector": 0, "bank": 0}
    _upstream(storage, base)
    stamp = _generated_test_stamp(storage, 16, 0, {"min_oks": 0.5})
    lora_json = file_hash(storage, "dpo_generator", "lora.json")
    metrics = file_hash(storage, "pose_detector", "metrics.json")
    _upstream(storage, base)
    assert _generated_test_stamp(storage, 16, 0, {"min_oks": 0.5}) == stamp  # nothing changed: reused
    for what in base:
        _upstream(storage, {**base, what: 1})
        # The old stamp's inputs (LoRA hyper-parameters, detector metrics) did not change ...
        assert file_hash(storage, "dpo_generator", "lora.json") == lora_json
        assert file_hash(storage, "pose_detector", "metrics.json") == metrics
        # ... the weights did, and so does the stamp.
        assert _generated_test_stamp(storage, 16, 0, {"min_oks": 0.5}) != stamp, what
    _upstream(storage, base)
    assert _generated_test_stamp(storage, 16, 0, {"min_oks": 0.6}) != stamp
