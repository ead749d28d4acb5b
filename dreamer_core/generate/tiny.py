"""The `tiny` generator: a small control-conditioned diffusion model built from diffusers classes
and trained from scratch on reference renders (control -> image).

Why this shape: at 64 px on two CPU cores, a UNet working at full resolution costs ~4x more per
step than the same UNet behind a pixel-unshuffle (space-to-depth), which moves each 2x2 (or 4x4)
pixel block into channels; the control is unshuffled the same way and concatenated, so the
network sees image and control aligned cell by cell. Prompts are accepted (one interface for all
backends) but not encoded: the reference renders' appearance is not text-driven, so the tiny model
is control-conditioned only and its appearance comes from the seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, FlowMatchEulerDiscreteScheduler, UNet2DModel
from torch import nn
from torch.nn import functional as F

from dreamer_core.checkpoints import load_checkpoint, save_checkpoint
from dreamer_core.devices import autocast
from dreamer_core.errors import ConfigError
from dreamer_core.generate.base import OBJECTIVES, flow_noisy, logit_normal, sample_seeds_noise


@dataclass(frozen=True)
class TinyGeneratorConfig:
    image_size: int = 64
    unshuffle: int = 2  # space-to-depth factor around the UNet
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    layers_per_block: int = 1
    attention: bool = True  # self-attention at the lowest resolution
    objective: str = "v_prediction"  # epsilon | v_prediction (DDPM, cosine schedule) | flow (rectified flow)
    num_train_timesteps: int = 1000
    sample_steps: int = 20
    guidance_scale: float = 1.0  # classifier-free guidance on the control (1 = none; needs control dropout)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"generator objective {self.objective!r} is not one of {OBJECTIVES}")
        if self.image_size % (self.unshuffle * 2 ** (len(self.block_out_channels) - 1)):
            raise ConfigError(
                f"generator image_size {self.image_size} must be divisible by unshuffle x 2^(levels-1) = "
                f"{self.unshuffle * 2 ** (len(self.block_out_channels) - 1)}; change image_size or block_out_channels"
            )


class ControlUNet(nn.Module):
    """pixel-unshuffle(noisy) ++ pixel-unshuffle(control) -> UNet2DModel -> pixel-shuffle."""

    def __init__(self, cfg: TinyGeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        u2 = 3 * cfg.unshuffle**2
        levels = len(cfg.block_out_channels)
        down = ["DownBlock2D"] * levels
        up = ["UpBlock2D"] * levels
        if cfg.attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.unet = UNet2DModel(
            sample_size=cfg.image_size // cfg.unshuffle,
            in_channels=2 * u2,
            out_channels=u2,
            block_out_channels=tuple(cfg.block_out_channels),
            layers_per_block=cfg.layers_per_block,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=min(32, cfg.block_out_channels[0]),
            attention_head_dim=32,
            add_attention=cfg.attention,
        )

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        u = self.cfg.unshuffle
        x = torch.cat([F.pixel_unshuffle(noisy, u), F.pixel_unshuffle(controls * 2 - 1, u)], 1)
        return F.pixel_shuffle(self.unet(x, timesteps).sample, u)


class TinyGenerator:
    """Implements ``ControlGenerator`` in pixel space; images live in [-1, 1] inside."""

    def __init__(self, cfg: TinyGeneratorConfig, net: ControlUNet | None = None) -> None:
        self.cfg = cfg
        self.objective = cfg.objective
        self.net = net if net is not None else ControlUNet(cfg)
        if cfg.objective == "flow":
            self.scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=cfg.num_train_timesteps, shift=1.0)
        else:
            self.scheduler = DDPMScheduler(
                num_train_timesteps=cfg.num_train_timesteps,
                beta_schedule="squaredcos_cap_v2",
                prediction_type=cfg.objective,
                clip_sample=True,
            )

    @property
    def denoiser(self) -> nn.Module:
        return self.net

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> TinyGenerator:
        """Moves the network; noise is still drawn on the CPU from the per-sample seeds, so a
        sample's starting noise is the same on every device."""
        self.net.to(device)
        return self

    def sampler(self):
        """A fresh sampling scheduler that shares the training noise schedule and prediction type
        (deriving it from the training config is what keeps the two from silently disagreeing)."""
        if self.objective == "flow":
            return FlowMatchEulerDiscreteScheduler.from_config(self.scheduler.config)
        # "trailing" spacing starts sampling at the last training step (pure noise), not T - T/steps.
        return DDIMScheduler.from_config(self.scheduler.config, timestep_spacing="trailing")

    def draw_noise(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)

    def draw_timesteps(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.objective == "flow":
            return logit_normal(n, generator)
        return torch.randint(0, self.cfg.num_train_timesteps, (n,), generator=generator)

    def noisy_and_target(
        self, images: torch.Tensor, timesteps: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy input, target, timestep values fed to the network) for images in [0, 1]."""
        x0 = images * 2 - 1
        if self.objective == "flow":
            noisy, target = flow_noisy(x0, noise, timesteps)
            return noisy, target, timesteps * self.cfg.num_train_timesteps
        noisy = self.scheduler.add_noise(x0, noise, timesteps)
        if self.objective == "sample":
            target = x0
        elif self.objective == "epsilon":
            target = noise
        else:
            target = self.scheduler.get_velocity(x0, noise, timesteps)
        return noisy, target, timesteps

    def loss(self, images, controls, prompts, timesteps, noise) -> torch.Tensor:
        noisy, target, t_in = self.noisy_and_target(images, timesteps, noise)
        pred = self.net(noisy, t_in, controls)
        return (pred - target).pow(2).flatten(1).mean(1)

    @torch.no_grad()
    def sample(self, controls, prompts, seeds, steps=None) -> torch.Tensor:
        if len(seeds) != len(controls):
            raise ValueError(f"{len(controls)} controls but {len(seeds)} seeds")
        was_training = self.net.training
        self.net.eval()
        sched = self.sampler()
        sched.set_timesteps(steps or self.cfg.sample_steps)
        device = self.device
        x = sample_seeds_noise(tuple(controls.shape[1:]), seeds).to(device)
        controls = controls.to(device)
        if self.objective != "flow":
            x = x * sched.init_noise_sigma
        w = self.cfg.guidance_scale
        null = torch.zeros_like(controls)  # the "no control" input that control dropout trains
        for t in sched.timesteps:
            tb = (t.expand(len(x)) if t.dim() == 0 else t).to(device)
            with autocast(device):
                if w == 1.0:
                    out = self.net(x, tb, controls)
                else:
                    both = self.net(torch.cat([x, x]), torch.cat([tb, tb]), torch.cat([controls, null]))
                    cond, uncond = both.chunk(2)
                    out = uncond + w * (cond - uncond)
            x = sched.step(out.float(), t, x).prev_sample
        self.net.train(was_training)
        return ((x.clamp(-1, 1) + 1) / 2).float().cpu()

    def save(self, folder: str | Path, state: dict[str, torch.Tensor] | None = None) -> None:
        cfg = asdict(self.cfg)
        cfg["block_out_channels"] = list(cfg["block_out_channels"])
        save_checkpoint(folder, "model", state if state is not None else self.net.state_dict(),
                        {"class": "TinyGenerator", **cfg})  # fmt: skip

    @classmethod
    def load(cls, folder: str | Path, asset: str = "generator") -> TinyGenerator:
        cfg, state = load_checkpoint(folder, "model", "TinyGenerator", asset)
        cfg["block_out_channels"] = tuple(cfg["block_out_channels"])
        gen = cls(TinyGeneratorConfig(**cfg))
        gen.net.load_state_dict(state)
        gen.net.eval()
        return gen
