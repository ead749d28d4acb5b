"""The one interface every generator backend offers, and the noising arithmetic they share.

Diffusion-DPO needs more than ``sample``: it needs the denoising loss of a given (image, control,
prompt) at a *given* timestep and noise, so that winner, loser and the frozen reference are
compared on identical corruptions. Backends therefore expose ``draw_noise``/``draw_timesteps``
and ``loss`` separately, in their own units (DDPM steps 0..T-1 or flow times in (0, 1)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import nn

OBJECTIVES = ("epsilon", "v_prediction", "sample", "flow")


@runtime_checkable
class ControlGenerator(Protocol):
    objective: str  # one of OBJECTIVES: what the network predicts, hence which DPO variant applies

    @property
    def denoiser(self) -> nn.Module:
        """The network that LoRA adapters attach to (UNet or transformer)."""
        ...

    def sample(
        self, controls: torch.Tensor, prompts: list[str], seeds: list[int], steps: int | None = None
    ) -> torch.Tensor:
        """controls [B, 3, H, W] in [0, 1] -> images [B, 3, H, W] in [0, 1]; sample i depends only
        on (control i, prompt i, seed i), never on what else is in the batch."""
        ...

    def draw_noise(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noise shaped like the space the model denoises (pixels or latents) for these images."""
        ...

    def draw_timesteps(self, n: int, generator: torch.Generator) -> torch.Tensor: ...

    def loss(
        self,
        images: torch.Tensor,
        controls: torch.Tensor,
        prompts: list[str],
        timesteps: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """Per-sample denoising error [B] (mean squared error to the objective's target)."""
        ...


def sample_seeds_noise(shape: tuple[int, ...], seeds: list[int], dtype=torch.float32) -> torch.Tensor:
    """Initial noise built one sample at a time from its own seed, so results do not depend on
    batch composition or size (a resumed or re-batched shard gives the same bytes)."""
    return torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(int(s)), dtype=dtype) for s in seeds]
    )


def logit_normal(n: int, generator: torch.Generator, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Flow-matching times in (0, 1), concentrated mid-way (SD3's logit-normal sampling)."""
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator))


def flow_noisy(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rectified flow: x_t = (1 - t) x0 + t noise, target velocity = noise - x0."""
    tt = t.reshape(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - tt) * x0 + tt * noise, noise - x0


def generate_batched(
    gen: ControlGenerator,
    controls: torch.Tensor,
    prompts: list[str],
    seeds: list[int],
    batch_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Samples of ``controls`` in batches of ``batch_size``: one seed per sample, so the result does
    not depend on the batch size."""
    out = []
    for start in range(0, len(controls), batch_size):
        sl = slice(start, start + batch_size)
        out.append(gen.sample(controls[sl], prompts[sl], seeds[sl]))
        if progress:
            progress(min(start + batch_size, len(controls)), len(controls))
    return torch.cat(out)
