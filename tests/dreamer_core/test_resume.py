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


def test_a_save_killed_at_any_point_leaves_the_previous_state_or_the_new_one(tmp_path):
    """SIGKILL at 20 seeded times while a child saves step after step: each time the folder
    resumes to a step whose weights are that step's (the old save or the new one, complete); the
    next complete save removes whatever a killed one left."""
    import os
    import signal
    import time

    import numpy as np

    folder, key = tmp_path / "resume", {"run": "kill-test"}
    rng = np.random.default_rng(0)
    survived, last = 0, 0
    for delay in rng.uniform(0.0, 0.05, 20):
        pid = os.fork()
        if pid == 0:  # the child: save steps last+1, last+2, ... as fast as it can until killed
            try:
                step = last
                net, gen = nn.Linear(64, 64), torch.Generator().manual_seed(0)
                opt = torch.optim.SGD(net.parameters())
                while True:
                    step += 1
                    with torch.no_grad():
                        net.weight.fill_(step)
                    save_state(folder, step, {"net": net}, opt, gen, key)
            finally:
                os._exit(0)
        time.sleep(0.02 + delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        net = nn.Linear(64, 64)
        step = load_state(folder, {"net": net}, torch.optim.SGD(net.parameters()), torch.Generator(), key)
        assert step >= last and (step == 0 or bool((net.weight == step).all())), (step, last)
        survived += step >= last
        last = step
    assert survived == 20 and last > 0
    net = nn.Linear(64, 64)
    save_state(folder, last + 1, {"net": net}, torch.optim.SGD(net.parameters()), torch.Generator(), key)
    assert [p.name for p in folder.glob("state*.safetensors")] == [f"state-{last + 1:09d}.safetensors"]
