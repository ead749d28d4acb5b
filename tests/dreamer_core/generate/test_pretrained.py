"""The `full` generator backends (SD1.5 / SDXL + ControlNet, FLUX control LoRA) on tiny randomly
initialised components of the real classes, loaded from folders as real weights would be: images
of the right shape, per-sample seeds independent of the batch, a save/load round trip, and one
Diffusion-DPO step whose gradient reaches the adapters and only the adapters."""

import pytest
import torch

from dreamer_core.config import GeneratorSettings
from dreamer_core.dpo.lora import LoraSettings, adapters_disabled
from dreamer_core.dpo.train import DPOTraining, train_dpo
from dreamer_core.errors import PipelineInputError
from dreamer_core.generate.backends import load_generator
from dreamer_core.generate.base import ControlGenerator
from dreamer_core.generate.pretrained import DiffusersControlGenerator
from tests.helpers import tiny_diffusers

BUILDERS = {
    "sd15_controlnet": tiny_diffusers.save_sd15,
    "sdxl_controlnet": tiny_diffusers.save_sdxl,
    "flux_control": tiny_diffusers.save_flux_control,
}
OBJECTIVE = {"sd15_controlnet": "epsilon", "sdxl_controlnet": "epsilon", "flux_control": "flow"}


def _settings(backend, base, control):
    return GeneratorSettings(backend=backend, weights=str(base), control_weights=str(control), sample_steps=2,
                             guidance_scale=3.5)  # fmt: skip


@pytest.fixture(scope="module", params=list(BUILDERS))
def backend(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    base, control = BUILDERS[request.param](root)
    return request.param, DiffusersControlGenerator.from_settings(_settings(request.param, base, control)), root


def test_samples_have_the_right_shape_and_do_not_depend_on_the_batch(backend):
    name, gen, _ = backend
    assert isinstance(gen, ControlGenerator) and gen.objective == OBJECTIVE[name]
    controls = torch.rand(2, 3, 32, 32)
    images = gen.sample(controls, ["a photo of a person", "a person"], [11, 12])
    assert images.shape == (2, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    alone = gen.sample(controls[1:], ["a person"], [12])
    assert torch.allclose(alone[0], images[1], atol=1e-4)


def test_save_writes_a_reference_that_reloads(backend, tmp_path):
    name, gen, _ = backend
    gen.save(tmp_path)
    again = load_generator(tmp_path)
    assert isinstance(again, DiffusersControlGenerator) and again.backend == name
    controls = torch.rand(1, 3, 32, 32)
    assert torch.allclose(gen.sample(controls, ["a"], [3]), again.sample(controls, ["a"], [3]), atol=1e-5)


def test_one_dpo_step_trains_only_the_adapters(backend):
    name, gen, _ = backend
    frozen = {k: v.clone() for k, v in gen.denoiser.state_dict().items()}
    w, lo, c = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    cfg = DPOTraining(steps=1, batch_pairs=2, lr=1e-2, beta=100.0, lora=LoraSettings(rank=2, alpha=2.0))
    stats = train_dpo(gen, w, lo, c, ["a photo", "a person"], cfg)
    assert torch.isfinite(torch.tensor(stats["loss"]))
    state = gen.denoiser.state_dict()
    lora = [k for k in state if "lora_B" in k]
    assert lora and any(state[k].abs().sum() > 0 for k in lora)  # B starts at zero: a step moved it
    for k, v in frozen.items():  # base weights untouched (peft renames them under base_layer)
        key = k if k in state else k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(state[key], v), k
    with adapters_disabled(gen.denoiser):  # the reference is the base network again
        gr = torch.Generator().manual_seed(0)
        t, n = gen.draw_timesteps(2, gr), gen.draw_noise(w, gr)
        ref = gen.loss(w, c, ["a", "b"], t, n)
    assert torch.isfinite(ref).all()


def test_missing_weights_name_the_setting(tmp_path):
    with pytest.raises(PipelineInputError, match="generator.weights"):
        DiffusersControlGenerator.from_settings(_settings("sd15_controlnet", tmp_path / "nope", tmp_path / "nope"))
