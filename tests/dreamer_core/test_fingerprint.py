"""Content fingerprints: a key changes when the weights or a shard's bytes change with every count
and hyper-parameter file unchanged, and stays the same when nothing changed (so a rerun resumes)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from dreamer_core.datasets.shards import read_index
from dreamer_core.fingerprint import (
    MISSING,
    data_fingerprint,
    digest_of,
    files_fingerprint,
    tensor_digest,
    weights_fingerprint,
)
from tests.helpers.content import write_model, write_shards


def test_weights_key_changes_with_the_weights_alone(tmp_path):
    write_model(tmp_path / "a", seed=0)
    write_model(tmp_path / "b", seed=1)  # same shapes, same config, same metrics
    assert (tmp_path / "a" / "config.json").read_bytes() == (tmp_path / "b" / "config.json").read_bytes()
    assert weights_fingerprint(tmp_path / "a") != weights_fingerprint(tmp_path / "b")


def test_weights_key_is_stable_and_ignores_what_is_not_weights(tmp_path):
    write_model(tmp_path / "m", seed=0)
    key = weights_fingerprint(tmp_path / "m")
    assert len(key) == 64 and key == weights_fingerprint(tmp_path / "m")
    write_model(tmp_path / "m", seed=0)  # rewritten with the same content: a rerun resumes
    assert weights_fingerprint(tmp_path / "m") == key
    (tmp_path / "m" / "metrics.json").write_text("{}")
    (tmp_path / "m" / "preview.png").write_bytes(b"png")
    (tmp_path / "m" / "resume").mkdir()
    save_file({"x": torch.zeros(1)}, str(tmp_path / "m" / "resume" / "state.safetensors"))
    assert weights_fingerprint(tmp_path / "m") == key
    (tmp_path / "m" / "config.json").write_text(json.dumps({"class": "Net", "width": 5}))
    assert weights_fingerprint(tmp_path / "m") != key


def test_weights_key_takes_extra_files_and_names_an_absent_model(tmp_path):
    folder = tmp_path / "lora"
    folder.mkdir()
    save_file({"a": torch.ones(2)}, str(folder / "lora.safetensors"))
    (folder / "lora.json").write_text('{"rank": 4}')
    key = weights_fingerprint(folder, extra=("lora.json",))
    (folder / "lora.json").write_text('{"rank": 8}')
    assert weights_fingerprint(folder, extra=("lora.json",)) != key
    assert weights_fingerprint(tmp_path / "nowhere") == MISSING == files_fingerprint(tmp_path, ("*.none",))


def test_data_key_changes_when_one_shard_changes_with_the_same_count(tmp_path):
    write_shards(tmp_path / "a", [10, 20, 30, 40])
    write_shards(tmp_path / "b", [10, 20, 30, 41])  # one pixel value in the last shard; same counts
    a, b = (read_index(tmp_path / f) for f in ("a", "b"))
    assert {k: e["num_samples"] for k, e in a.items()} == {k: e["num_samples"] for k, e in b.items()}
    assert a["shard-000000.tar"] == b["shard-000000.tar"] and a["shard-000001.tar"] != b["shard-000001.tar"]
    assert data_fingerprint(tmp_path / "a") != data_fingerprint(tmp_path / "b")


def test_data_key_is_stable_reads_only_the_index_and_includes_manifests(tmp_path):
    folder = tmp_path / "shards"
    write_shards(folder, [1, 2, 3])
    key = data_fingerprint(folder)
    assert len(key) == 64 and key == data_fingerprint(folder)
    write_shards(folder, [1, 2, 3])  # the same shards written again (byte-reproducible): same key
    assert data_fingerprint(folder) == key
    (folder / "shard-000000.tar").write_bytes(b"not read")  # the index is what is hashed, not the images
    assert data_fingerprint(folder) == key
    (folder / "manifest.parquet").write_bytes(b"rows")
    with_manifest = data_fingerprint(folder)
    assert with_manifest != key
    (folder / "manifest.parquet").write_bytes(b"other rows")
    assert data_fingerprint(folder) != with_manifest
    assert data_fingerprint(tmp_path / "empty") == MISSING


def test_tensor_digest_is_content():
    x = {"image": torch.rand(3, 2, 2), "K": torch.eye(3)}
    key = tensor_digest(x)
    assert key == tensor_digest({k: v.clone() for k, v in reversed(x.items())})
    changed = {**x, "image": x["image"].clone()}
    changed["image"][0, 0, 0] += 1e-3
    assert tensor_digest(changed) != key
    assert tensor_digest({**x, "K": x["K"].double()}) != key
    assert tensor_digest({**x, "K": x["K"].reshape(9)}) != key
    mixed = {"flag": torch.tensor([True]), "n": 3}
    assert tensor_digest(mixed) == tensor_digest(dict(reversed(mixed.items())))


def test_digest_of_ignores_key_order():
    assert digest_of({"a": 1, "b": [1, 2]}) == digest_of({"b": [1, 2], "a": 1})
    with pytest.raises(TypeError):
        digest_of({"a": object()})
