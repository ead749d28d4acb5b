"""Resume state is keyed by content: a saved state is picked up by a rerun with identical inputs,
and ignored when the upstream weights or the training data changed with every count and
hyper-parameter unchanged."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from dreamer_core.fingerprint import data_fingerprint, weights_fingerprint
from dreamer_core.resume import load_state, resume_key, save_state
from tests.helpers.content import write_model, write_shards


@dataclass(frozen=True)
class Settings:
    steps: int = 10
    lr: float = 1e-3


def _key(tmp_path, data: dict[str, torch.Tensor] | None = None, inputs: bool = True) -> dict:
    content = {"start": weights_fingerprint(tmp_path / "upstream"), "data": data_fingerprint(tmp_path / "shards")}
    data = data if data is not None else {"image": torch.zeros(4, 3)}
    return resume_key(asdict(Settings()), {"class": "Net"}, content if inputs else None, data, num_samples=4)


def _save(folder, key: dict) -> None:
    net = nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    save_state(folder, 4, {"net": net}, opt, torch.Generator().manual_seed(0), key)


def _load(folder, key: dict) -> int:
    net = nn.Linear(3, 2)
    return load_state(folder, {"net": net}, torch.optim.AdamW(net.parameters()), torch.Generator(), key)


def test_identical_inputs_resume(tmp_path):
    write_model(tmp_path / "upstream", seed=0)
    write_shards(tmp_path / "shards", [1, 2, 3, 4])
    _save(tmp_path / "resume", _key(tmp_path))
    write_model(tmp_path / "upstream", seed=0)  # a rerun rebuilds the same inputs
    write_shards(tmp_path / "shards", [1, 2, 3, 4])
    assert _load(tmp_path / "resume", _key(tmp_path)) == 4


def test_retrained_upstream_weights_with_the_same_shapes_do_not_resume(tmp_path):
    write_model(tmp_path / "upstream", seed=0)
    write_shards(tmp_path / "shards", [1, 2, 3, 4])
    _save(tmp_path / "resume", _key(tmp_path))
    write_model(tmp_path / "upstream", seed=1)
    assert _load(tmp_path / "resume", _key(tmp_path)) == 0


def test_a_changed_shard_with_the_same_count_does_not_resume(tmp_path):
    write_model(tmp_path / "upstream", seed=0)
    write_shards(tmp_path / "shards", [1, 2, 3, 4])
    _save(tmp_path / "resume", _key(tmp_path))
    write_shards(tmp_path / "shards", [1, 2, 3, 5])
    assert _load(tmp_path / "resume", _key(tmp_path)) == 0


def test_without_file_fingerprints_the_tensors_key_the_state(tmp_path):
    (tmp_path / "shards").mkdir()
    data = {"image": torch.rand(4, 3)}
    _save(tmp_path / "resume", _key(tmp_path, data, inputs=False))
    assert _load(tmp_path / "resume", _key(tmp_path, {"image": data["image"].clone()}, inputs=False)) == 4
    other = {"image": data["image"].clone()}
    other["image"][0, 0] += 1.0
    assert _load(tmp_path / "resume", _key(tmp_path, other, inputs=False)) == 0
