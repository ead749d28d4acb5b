"""Resumable training: the whole state of a loop (model(s), optimizer, RNG, step) saved atomically
every N steps in safetensors + JSON (never pickle), so a killed run continues where it stopped
and ends with the same weights as an uninterrupted one.

A fingerprint of the run is stored alongside (``resume_key``): its configuration and the content
of what it starts from and trains on. State written by a different run is ignored rather than
silently mixed in; a rerun with identical inputs has the identical key and continues.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dreamer_core.fingerprint import tensor_digest
from dreamer_core.io import atomic_path, write_json_atomic

STATE, META = "state.safetensors", "state.json"


def resume_key(training: dict[str, Any], model: Any, inputs: Mapping[str, Any] | None, data: Mapping[str, Any],
               **counts: int) -> dict[str, Any]:  # fmt: skip
    """What a saved state must match to be resumed: the training settings, the model's config,
    the counts, and the content of what the run starts from and trains on.

    Counts and settings alone stay the same when the training data or the upstream weights are
    regenerated, so the content is part of the key: ``inputs`` are the caller's fingerprints
    (``dreamer_core.fingerprint``: upstream weights, shard indexes), cheap because they read no
    image; without them, a digest of the training tensors ``data`` themselves. Everything here is
    a pure function of the inputs, so a rerun with unchanged inputs resumes."""
    content = dict(inputs) if inputs is not None else {"data": tensor_digest(data)}
    return {"training": training, "model": model, **counts, "inputs": content}


def save_state(folder: str | Path, step: int, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer,
               rng: torch.Generator, fingerprint: dict[str, Any]) -> None:  # fmt: skip
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {"rng": rng.get_state()}
    for name, module in modules.items():
        tensors.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
    opt = optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for pid, entry in opt["state"].items():
        for k, v in entry.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    # Each save writes a new state file; the metadata, written last, names it and its SHA-256 (the
    # commit mark), and only then are older state files removed: killed at any point, the folder
    # holds the previous save or this one, complete, never a state without its metadata.
    name = f"state-{step:09d}.safetensors"
    with atomic_path(folder / name, durable=True) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    write_json_atomic(folder / META, {"step": step, "fingerprint": fingerprint, "param_groups": opt["param_groups"],
                                      "optim_scalars": scalars, "state": name, "sha256": digest},
                      durable=True)  # fmt: skip
    for old in folder.glob("state*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_state(folder: str | Path, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer,
               rng: torch.Generator, fingerprint: dict[str, Any]) -> int:  # fmt: skip
    """Restores everything and returns the step to continue from (0: nothing usable saved)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / META).is_file():
        return 0
    meta = json.loads((folder / META).read_text())
    if meta["fingerprint"] != json.loads(json.dumps(fingerprint)):
        return 0
    name = meta.get("state", STATE)
    if not isinstance(name, str) or not re.fullmatch(r"state(-\d{9})?\.safetensors", name):
        return 0  # not a state file this code writes: start over rather than open another path
    state_file = folder / name
    if not state_file.is_file() or ("sha256" in meta and hashlib.sha256(state_file.read_bytes()).hexdigest()
                                    != meta["sha256"]):  # fmt: skip
        return 0  # the state its metadata names is gone or is not the one it hashed: start over
    tensors = load_file(str(state_file))
    rng.set_state(tensors["rng"])
    for name, module in modules.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in meta["optim_scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["step"])


def clear_state(folder: str | Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
