"""Content fingerprints: what cache keys, reuse stamps and resume states are made of.

A resume state, a reused checkpoint or a cached score is valid only for the exact bytes it was
computed from. Sample counts and hyper-parameter files stay the same when a model is retrained or
a shard is regenerated, so keys made of them silently reuse stale state; these are SHA-256s of
content instead:

- ``weights_fingerprint``: every weight file of a model folder (``*.safetensors`` and
  ``config.json``), hashed in full;
- ``data_fingerprint``: a shard folder's index files (the SHA-256 of every shard, recorded when
  the shard was written; a shard's index is written last, so it is its commit record) plus its
  manifests, so fingerprinting a dataset reads a few small files, never the images;
- ``tensor_digest``: tensors already in memory, for training loops called without file
  fingerprints (a library caller, a test).

Each returns a 64-digit hex SHA-256, or ``MISSING`` when there is nothing to hash (a stable value,
so an absent input keys the same on a rerun).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dreamer_core.datasets.shards import read_index

WEIGHT_FILES = ("*.safetensors", "config.json")
MISSING = "missing"
_CHUNK = 1 << 20


def digest_of(obj: Any) -> str:
    """SHA-256 of a JSON-serialisable value in canonical form (sorted keys, no whitespace), so
    equal content gives equal keys whatever the dict order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in chunks (weights can be gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def files_fingerprint(folder: str | Path, patterns: Iterable[str]) -> str:
    """SHA-256 over (name, SHA-256) of the files directly in ``folder`` matching ``patterns``.

    Only the top level: a model folder's subfolders (``resume/``, a second model such as the pose
    detector's ``judge/``) are not the weights that folder loads as."""
    folder = Path(folder)
    files = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    if not files:
        return MISSING
    return digest_of({p.name: file_sha256(p) for p in files})


def weights_fingerprint(folder: str | Path, extra: Iterable[str] = ()) -> str:
    """The weights a model folder loads: ``*.safetensors`` and ``config.json`` (plus ``extra``
    patterns, e.g. ``lora.json``). Previews, metrics and summaries are not part of it: they can
    stay the same when the weights change and change when the weights do not."""
    return files_fingerprint(folder, (*WEIGHT_FILES, *extra))


def data_fingerprint(folder: str | Path) -> str:
    """A shard folder's content from its index files (each shard's SHA-256 and sample count) and
    its manifests (``manifest*.parquet``), without reading a shard.

    A shard rewritten with other bytes has another SHA-256 in its index even when its sample count
    is the same; a shard killed half-way has no index yet and is not part of the data, exactly as
    readers see it."""
    folder = Path(folder)
    index = read_index(folder) if any(folder.glob("*.index.json")) else {}
    manifests = {p.name: file_sha256(p) for p in sorted(folder.glob("manifest*.parquet"))}
    if not index and not manifests:
        return MISSING
    shards = {name: [entry.get("sha256"), entry.get("num_samples")] for name, entry in index.items()}
    return digest_of({"shards": shards, "manifests": manifests})


def tensor_digest(values: Mapping[str, Any]) -> str:
    """SHA-256 of named tensors (dtype, shape and bytes) and plain values: the content of training
    data already in memory. Used only when a caller passes no file fingerprints, since it reads
    every element (and copies device tensors to the CPU)."""
    import torch

    h = hashlib.sha256()
    for name in sorted(values):
        value = values[name]
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself: no copy
        else:
            h.update(f"{name}={json.dumps(value, sort_keys=True, default=str)};".encode())
    return h.hexdigest()


__all__ = [
    "MISSING",
    "WEIGHT_FILES",
    "data_fingerprint",
    "digest_of",
    "file_sha256",
    "files_fingerprint",
    "tensor_digest",
    "weights_fingerprint",
]
