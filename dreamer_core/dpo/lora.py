"""LoRA adapters on any generator's denoiser through ``peft``, switchable off so that the same
network with adapters disabled serves as DPO's frozen reference (no second copy in memory)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from dreamer_core.errors import PipelineInputError
from dreamer_core.io import atomic_path, write_json_atomic

# Attention projections (the paper's choice) are named alike in diffusers UNets and transformers.
ATTENTION_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 8
    alpha: float = 8.0
    targets: tuple[str, ...] = ATTENTION_TARGETS


def add_lora(net: nn.Module, settings: LoraSettings) -> list[nn.Parameter]:
    """Freezes ``net``, injects adapters in place, returns the trainable adapter parameters."""
    present = {name.rsplit(".", 1)[-1] for name, _ in net.named_modules()} | {
        ".".join(name.rsplit(".", 2)[-2:]) for name, _ in net.named_modules()
    }
    missing = [t for t in settings.targets if t not in present]
    if missing:
        raise PipelineInputError(
            f"LoRA targets {missing} match no module of {type(net).__name__}; set dpo.lora_targets to module "
            "names it has (e.g. to_q, to_k, to_v, to_out.0, conv1, conv2)"
        )
    net.requires_grad_(False)
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.targets),
                        init_lora_weights=True)  # fmt: skip
    inject_adapter_in_model(config, net)
    params = [p for n, p in net.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    return params


@contextlib.contextmanager
def adapters_disabled(net: nn.Module) -> Iterator[None]:
    layers = [m for m in net.modules() if isinstance(m, BaseTunerLayer)]
    for m in layers:
        m.enable_adapters(False)
    try:
        yield
    finally:
        for m in layers:
            m.enable_adapters(True)


def save_lora(folder: str | Path, net: nn.Module, settings: LoraSettings, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(net).items()}
    with atomic_path(folder / "lora.safetensors") as tmp:
        save_file(state, str(tmp))
    write_json_atomic(folder / "lora.json", {**asdict(settings), "targets": list(settings.targets), **(extra or {})})


def load_lora(folder: str | Path, net: nn.Module) -> LoraSettings:
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        meta = json.loads((folder / "lora.json").read_text())
        state = load_file(str(folder / "lora.safetensors"))
    except FileNotFoundError as exc:
        raise PipelineInputError(f"{folder}: missing LoRA files ({exc.filename}); materialize dpo_generator") from exc
    settings = LoraSettings(rank=meta["rank"], alpha=meta["alpha"], targets=tuple(meta["targets"]))
    add_lora(net, settings)
    result = set_peft_model_state_dict(net, state)
    if result.unexpected_keys:
        raise PipelineInputError(f"{folder}: LoRA weights do not fit this generator ({result.unexpected_keys[:3]})")
    net.requires_grad_(False)
    return settings


def lora_parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for n, p in net.named_parameters() if "lora_" in n)


def load_generator_with_lora(generator_dir: str | Path, lora_dir: str | Path, device: Any = "cpu") -> Any:
    """The base generator saved in ``generator_dir`` with the DPO LoRA of ``lora_dir`` loaded onto its
    denoiser: the DPO-aligned generator that generation rounds and benchmarks sample from. The
    adapters are added on the CPU, then the whole model moves to ``device``."""
    from dreamer_core.generate.backends import load_generator

    gen = load_generator(generator_dir)
    load_lora(lora_dir, gen.denoiser)
    return gen.to(device)
