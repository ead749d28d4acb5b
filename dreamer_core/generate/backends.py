"""Choosing and reloading a generator backend from the ``generator`` params section.

``tiny`` is built fresh here and trained by the ``generator`` asset; the pretrained backends are
diffusers pipelines loaded from a path or hub id (see ``pretrained.py``). Either way the asset's
folder holds a ``config.json`` naming the class, so downstream assets reload it the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dreamer_core.config import GeneratorSettings
from dreamer_core.errors import PipelineInputError
from dreamer_core.generate.base import ControlGenerator
from dreamer_core.generate.tiny import TinyGenerator, TinyGeneratorConfig


def tiny_config(settings: GeneratorSettings, image_size: int) -> TinyGeneratorConfig:
    return TinyGeneratorConfig(
        image_size=image_size,
        unshuffle=int(settings.unshuffle),
        block_out_channels=tuple(settings.channels),
        objective=settings.objective,
        sample_steps=settings.sample_steps,
        guidance_scale=float(settings.guidance_scale),
    )


def load_generator(folder: str | Path, device: torch.device | str = "cpu") -> ControlGenerator:
    """Whatever the ``generator`` asset saved in ``folder``, on ``device``."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise PipelineInputError(f"{folder}: no generator config.json; materialize generator first")
    cls = json.loads(cfg_path.read_text()).get("class")
    if cls == "TinyGenerator":
        return TinyGenerator.load(folder).to(device)
    if cls == "DiffusersControlGenerator":
        from dreamer_core.generate.pretrained import DiffusersControlGenerator

        return DiffusersControlGenerator.load(folder, device)
    raise PipelineInputError(f"{cfg_path}: unknown generator class {cls!r}")
