"""Checkpoints of every model here: weights in ``safetensors`` (never unpickled)
plus a JSON config naming the class, both written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from dreamer_core.errors import PipelineInputError
from dreamer_core.io import atomic_path, write_json_atomic


def save_checkpoint(folder: str | Path, stem: str, state: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"{stem}.safetensors", durable=True) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    write_json_atomic(folder / f"{stem}.json" if stem != "model" else folder / "config.json", config, durable=True)


def load_checkpoint(folder: str | Path, stem: str, cls_name: str, asset: str) -> tuple[dict[str, Any], dict]:
    """(config without its "class" key, state dict); clear errors for missing or foreign files."""
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path = folder / (f"{stem}.json" if stem != "model" else "config.json")
    try:
        cfg = json.loads(cfg_path.read_text())
        state = load_file(str(folder / f"{stem}.safetensors"))
    except FileNotFoundError as exc:
        raise PipelineInputError(f"{folder}: missing checkpoint files ({exc.filename}); materialize {asset}") from exc
    except Exception as exc:  # json and safetensors raise their own types for damaged files
        raise PipelineInputError(
            f"{folder}: unreadable checkpoint ({type(exc).__name__}: {exc}); re-materialize {asset}"
        ) from exc
    if not isinstance(cfg, dict) or cfg.pop("class", None) != cls_name:
        raise PipelineInputError(f"{cfg_path} does not describe a {cls_name}; point at a {asset} folder")
    return cfg, state
