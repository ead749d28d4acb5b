"""`full`-profile generators: pretrained diffusers pipelines behind the ``ControlGenerator`` interface.

- ``sd15_controlnet``: Stable Diffusion 1.5 + ControlNet (epsilon or v objective, per its scheduler).
- ``sdxl_controlnet``: SDXL + ControlNet (two text encoders, size/crop conditioning).
- ``flux_control``: FLUX.1 with a control LoRA (the paper's choice): the control image is encoded
  by the VAE and concatenated to the packed latents; rectified-flow (velocity) objective.

Sampling goes through the pipeline itself; ``loss`` re-implements one training step of each
(the part Diffusion-DPO needs), using the same encoders the pipeline uses. Weights come from a
local folder or a hub id; with ``HF_HUB_OFFLINE=1`` nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler
from torch import nn

from dreamer_core.config import GeneratorSettings
from dreamer_core.errors import PipelineInputError
from dreamer_core.generate.base import flow_noisy, logit_normal
from dreamer_core.io import write_json_atomic

BACKENDS = ("sd15_controlnet", "sdxl_controlnet", "flux_control")


def _pretrained(loader: Any, source: str, **kwargs: Any) -> Any:
    """``from_pretrained`` with a message that says what to set when the weights are not there."""
    offline = bool(os.environ.get("HF_HUB_OFFLINE"))
    try:
        return loader.from_pretrained(source, local_files_only=offline or Path(source).exists(), **kwargs)
    except (OSError, ValueError) as exc:
        raise PipelineInputError(
            f"cannot load {loader.__name__} from {source!r} ({exc.__class__.__name__}: {str(exc)[:200]}); set "
            "generator.weights / generator.control_weights to a local folder saved with save_pretrained, or a hub id "
            "with network access (HF_HUB_OFFLINE unset)"
        ) from exc


class DiffusersControlGenerator:
    def __init__(self, pipe: Any, backend: str, sample_steps: int = 28, guidance_scale: float = 3.5,
                 source: dict[str, str] | None = None) -> None:  # fmt: skip
        if backend not in BACKENDS:
            raise PipelineInputError(f"generator backend {backend!r} is not one of {BACKENDS}")
        self.pipe = pipe
        self.backend = backend
        self.sample_steps = sample_steps
        self.guidance_scale = guidance_scale
        self.source = source or {}
        pipe.set_progress_bar_config(disable=True)
        if backend == "flux_control":
            self.objective = "flow"
        else:
            self.objective = pipe.scheduler.config.get("prediction_type", "epsilon")
            # Training noise follows DDPM on the pipeline's beta schedule (as diffusers' training scripts do).
            self.train_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: GeneratorSettings,
                      device: torch.device | str = "cpu") -> DiffusersControlGenerator:  # fmt: skip
        """The pipeline the settings name, on ``device`` (the pipeline's ``device`` setting: the
        pretrained backends are meant for GPU nodes)."""
        backend, base, control = settings.backend, settings.weights, settings.control_weights
        if backend == "flux_control":
            from diffusers import FluxControlPipeline

            pipe = _pretrained(FluxControlPipeline, base)
            if control:  # fused into the base weights, so DPO's adapter is the only one to switch off
                pipe.load_lora_weights(control, adapter_name="control")
                pipe.fuse_lora(adapter_names=["control"])
                pipe.unload_lora_weights()
        else:
            from diffusers import (
                ControlNetModel,
                StableDiffusionControlNetPipeline,
                StableDiffusionXLControlNetPipeline,
            )

            pipe_cls = StableDiffusionControlNetPipeline if backend == "sd15_controlnet" else (
                StableDiffusionXLControlNetPipeline)  # fmt: skip
            pipe = _pretrained(pipe_cls, base, controlnet=_pretrained(ControlNetModel, control))
        pipe.to(device)
        return cls(pipe, backend, settings.sample_steps, settings.guidance_scale,
                   {"weights": base, "control_weights": control})  # fmt: skip

    def save(self, folder: str | Path) -> None:
        """A reference to the weights (path or hub id), not a copy of many gigabytes."""
        write_json_atomic(Path(folder) / "config.json", {
            "class": "DiffusersControlGenerator", "backend": self.backend, "sample_steps": self.sample_steps,
            "guidance_scale": self.guidance_scale, **self.source,
        })  # fmt: skip

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str = "cpu") -> DiffusersControlGenerator:
        cfg = json.loads((Path(folder) / "config.json").read_text())
        keys = ("backend", "weights", "control_weights", "sample_steps", "guidance_scale")
        return cls.from_settings(GeneratorSettings(**{k: cfg[k] for k in keys}), device)

    def to(self, device: torch.device | str) -> DiffusersControlGenerator:
        self.pipe.to(device)
        return self

    # -- the ControlGenerator interface ----------------------------------------------------------
    @property
    def denoiser(self) -> nn.Module:
        return self.pipe.transformer if self.backend == "flux_control" else self.pipe.unet

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    def _latent_shape(self, images: torch.Tensor) -> tuple[int, ...]:
        f = self.pipe.vae_scale_factor
        c = self.pipe.vae.config.latent_channels
        return (len(images), c, images.shape[-2] // f, images.shape[-1] // f)

    def draw_noise(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(self._latent_shape(images), generator=generator).to(self.device)

    def draw_timesteps(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.objective == "flow":
            return logit_normal(n, generator).to(self.device)
        return torch.randint(0, self.train_scheduler.config.num_train_timesteps, (n,), generator=generator).to(
            self.device
        )

    def _encode_images(self, images: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        latents = vae.encode((images * 2 - 1).to(self.device, vae.dtype)).latent_dist.mode()
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return (latents - shift) * vae.config.scaling_factor

    @torch.no_grad()
    def sample(self, controls, prompts, seeds, steps=None) -> torch.Tensor:
        if len(seeds) != len(controls) or len(prompts) != len(controls):
            raise ValueError(f"{len(controls)} controls, {len(prompts)} prompts, {len(seeds)} seeds")
        h, w = controls.shape[-2:]
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        key = "control_image" if self.backend == "flux_control" else "image"
        out = self.pipe(prompt=list(prompts), height=h, width=w, num_inference_steps=steps or self.sample_steps,
                        guidance_scale=self.guidance_scale, generator=gens, output_type="pt",
                        **{key: controls.to(self.device)})  # fmt: skip
        return out.images.float().cpu().clamp(0, 1)

    def loss(self, images, controls, prompts, timesteps, noise) -> torch.Tensor:
        with torch.no_grad():
            latents = self._encode_images(images)
        if self.backend == "flux_control":
            pred, target = self._flux_step(latents, controls, prompts, timesteps, noise)
        else:
            pred, target = self._unet_step(latents, controls, prompts, timesteps, noise)
        return (pred.float() - target.float()).pow(2).flatten(1).mean(1)

    # -- one training step per family ------------------------------------------------------------
    def _unet_step(self, latents, controls, prompts, t, noise):
        pipe, device = self.pipe, self.device
        noisy = self.train_scheduler.add_noise(latents, noise, t)
        extra: dict[str, Any] = {}
        with torch.no_grad():
            if self.backend == "sdxl_controlnet":
                pe, _, pooled, _ = pipe.encode_prompt(list(prompts), device=device, num_images_per_prompt=1,
                                                      do_classifier_free_guidance=False)  # fmt: skip
                h, w = controls.shape[-2:]
                time_ids = torch.tensor([h, w, 0, 0, h, w], dtype=pe.dtype, device=device).repeat(len(latents), 1)
                extra = {"added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}
            else:
                pe, _ = pipe.encode_prompt(list(prompts), device, 1, False)
        down, mid = pipe.controlnet(noisy, t, encoder_hidden_states=pe, controlnet_cond=controls.to(device, pe.dtype),
                                    return_dict=False, **extra)  # fmt: skip
        pred = pipe.unet(noisy, t, encoder_hidden_states=pe, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid, **extra).sample  # fmt: skip
        if self.objective == "v_prediction":
            target = self.train_scheduler.get_velocity(latents, noise, t)
        else:
            target = noise
        return pred, target

    def _flux_step(self, latents, controls, prompts, t, noise):
        pipe, device = self.pipe, self.device
        b, c, h, w = latents.shape
        with torch.no_grad():
            ctl = self._encode_images(controls)
            pe, pooled, text_ids = pipe.encode_prompt(prompt=list(prompts), prompt_2=None, device=device,
                                                      max_sequence_length=128)  # fmt: skip
        noisy, target = flow_noisy(latents, noise, t)
        ids = pipe._prepare_latent_image_ids(b, h // 2, w // 2, device, pe.dtype)
        hidden = torch.cat([pipe._pack_latents(noisy, b, c, h, w), pipe._pack_latents(ctl, b, c, h, w)], dim=2)
        guidance = None
        if pipe.transformer.config.guidance_embeds:
            guidance = torch.full((b,), self.guidance_scale, device=device, dtype=torch.float32)
        pred = pipe.transformer(hidden_states=hidden, timestep=t.to(pe.dtype), guidance=guidance,
                                pooled_projections=pooled, encoder_hidden_states=pe, txt_ids=text_ids,
                                img_ids=ids, return_dict=False)[0]  # fmt: skip
        return pred, pipe._pack_latents(target, b, c, h, w)
