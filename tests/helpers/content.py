"""Model folders and shard folders with chosen content, for tests of content-keyed caches: two
models of the same shapes and config that differ only in their weights, two shard folders of the
same sample counts that differ only in a pixel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from dreamer_core.datasets.shards import Sample, update_index, write_shard


def write_model(folder: Path, seed: int, config: dict | None = None, stem: str = "model") -> None:
    """A model folder as the pipeline writes one: weights of fixed shapes (values from ``seed``),
    config.json, and a metrics file that does not change with the weights."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    save_file({"w": torch.randn(4, 3, generator=g), "b": torch.randn(4, generator=g)},
              str(folder / f"{stem}.safetensors"))  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config or {"class": "Net", "width": 4}))
    (folder / "metrics.json").write_text(json.dumps({"oks": 0.5, "num_train": 10}))


def sample(key: str, value: int, size: int = 8) -> Sample:
    """A sample whose pixels all hold ``value``."""
    image = np.full((size, size, 3), value, dtype=np.uint8)
    labels = {"image_size": [size, size], "keypoints_2d": [[1.0, 2.0, 2.0]],
              "K": [[1.0, 0.0, size / 2], [0.0, 1.0, size / 2], [0.0, 0.0, 1.0]]}  # fmt: skip
    return Sample(key=key, image=image, control=image, mask=image[..., 0], labels=labels)


def write_shards(folder: Path, values: list[int], per_shard: int = 2) -> None:
    """Shards of ``per_shard`` samples (pixel values ``values``) with their index files."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(values), per_shard):
        name = f"shard-{i // per_shard:06d}.tar"
        samples = [sample(f"s{j:04d}", v) for j, v in enumerate(values[i : i + per_shard], start=i)]
        update_index(folder, {name: {"sha256": write_shard(folder / name, samples), "num_samples": len(samples)}})
