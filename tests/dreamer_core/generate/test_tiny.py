"""The tiny generator: its noising matches each objective's algebra, sampling depends only on
(control, seed), checkpoints round-trip, and training learns to use the control, measured on
held-out renders against shuffled controls and against the untrained network."""

import pytest
import torch

from dreamer_core.errors import ConfigError
from dreamer_core.generate.base import OBJECTIVES, ControlGenerator
from dreamer_core.generate.tiny import TinyGenerator, TinyGeneratorConfig
from dreamer_core.generate.train import GeneratorTraining, generator_resume_key, train_generator
from tests.helpers.renders import render_train_test

SMALL = dict(image_size=32, unshuffle=2, block_out_channels=(16, 32), sample_steps=4)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_targets_recover_the_clean_image(objective):
    gen = TinyGenerator(TinyGeneratorConfig(objective=objective, **SMALL))
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 32, 32)
    t = gen.draw_timesteps(4, g)
    noise = gen.draw_noise(images, g)
    noisy, target, _ = gen.noisy_and_target(images, t, noise)
    x0 = images * 2 - 1
    if objective == "flow":
        rec = noisy - t.view(-1, 1, 1, 1) * target
    else:
        a = gen.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        rec = {"sample": target, "epsilon": (noisy - (1 - a).sqrt() * target) / a.sqrt(),
               "v_prediction": a.sqrt() * noisy - (1 - a).sqrt() * target}[objective]  # fmt: skip
    assert torch.allclose(rec, x0, atol=1e-3)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_samples_depend_only_on_control_and_seed(objective, tmp_path):
    gen = TinyGenerator(TinyGeneratorConfig(objective=objective, **SMALL))
    assert isinstance(gen, ControlGenerator)
    controls = torch.rand(3, 3, 32, 32)
    batch = gen.sample(controls, [""] * 3, [5, 6, 7])
    assert batch.shape == (3, 3, 32, 32) and batch.min() >= 0 and batch.max() <= 1
    assert torch.allclose(gen.sample(controls[2:], [""], [7])[0], batch[2], atol=1e-5)
    assert not torch.allclose(gen.sample(controls[2:], [""], [8])[0], batch[2])
    gen.save(tmp_path)
    again = TinyGenerator.load(tmp_path)
    assert again.cfg == gen.cfg and torch.equal(again.sample(controls, [""] * 3, [5, 6, 7]), batch)


def test_bad_configs_say_what_to_change():
    with pytest.raises(ConfigError, match="objective"):
        TinyGeneratorConfig(objective="x0")
    with pytest.raises(ConfigError, match="divisible"):
        TinyGeneratorConfig(image_size=36, unshuffle=4, block_out_channels=(16, 32, 32))


def control_localisation(gen: TinyGenerator, test: dict, controls: torch.Tensor) -> float:
    """How much more the network's clean-image prediction (at high noise, where the figure can only
    come from the control) changes inside the true body mask than outside it, when the control
    is given instead of the empty control: > 1 means the figure lands where the label puts it."""
    g = torch.Generator().manual_seed(5)
    x = test["image"]
    noisy, _, t_in = gen.noisy_and_target(x, torch.full((len(x),), 900), gen.draw_noise(x, g))
    with torch.no_grad():
        change = (gen.net(noisy, t_in, controls) - gen.net(noisy, t_in, torch.zeros_like(controls))).abs()
    inside = test["mask"] > 0.5
    change = change.mean(1, keepdim=True)
    return float((change * inside).sum() / inside.sum() / ((change * ~inside).sum() / (~inside).sum()))


@pytest.mark.slow
def test_training_learns_to_follow_the_control(anny_body):
    train, test = render_train_test(anny_body, num_poses=120, heldout=20)
    torch.manual_seed(0)
    gen = TinyGenerator(TinyGeneratorConfig(image_size=48, unshuffle=4, block_out_channels=(32, 64)))
    untrained = control_localisation(gen, test, test["control"])
    train_generator(gen, train, GeneratorTraining(steps=400, batch_size=16, seed=0))
    matched = control_localisation(gen, test, test["control"])
    shuffled = control_localisation(gen, test, test["control"].roll(1, 0))  # another held-out pose's control
    # Measured: untrained ~1.7, shuffled ~1.85, matched ~2.3 after 300 steps (two seeds).
    assert matched > 1.2 * untrained and matched > 1.15 * shuffled, (matched, untrained, shuffled)


def test_control_guidance_batches_cond_and_null_consistently():
    guided = TinyGenerator(TinyGeneratorConfig(guidance_scale=2.5, **SMALL))
    plain = TinyGenerator(TinyGeneratorConfig(**SMALL), net=guided.net)
    controls = torch.rand(2, 3, 32, 32)
    a = guided.sample(controls, ["", ""], [1, 2])
    assert torch.allclose(guided.sample(controls[1:], [""], [2])[0], a[1], atol=1e-5)
    assert not torch.allclose(plain.sample(controls, ["", ""], [1, 2]), a, atol=1e-3)


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    data = {"image": torch.rand(16, 3, 32, 32), "control": torch.rand(16, 3, 32, 32)}
    cfg = GeneratorTraining(steps=6, batch_size=4, seed=3)
    straight = TinyGenerator(TinyGeneratorConfig(**SMALL))
    fresh_state = {k: v.clone() for k, v in straight.net.state_dict().items()}
    train_generator(straight, data, cfg)

    def kill(step):
        if step == 5:
            raise KeyboardInterrupt  # after the state of step 4 was saved

    killed = TinyGenerator(TinyGeneratorConfig(**SMALL))
    killed.net.load_state_dict(fresh_state)
    with pytest.raises(KeyboardInterrupt):
        train_generator(killed, data, cfg, resume_dir=tmp_path / "resume", checkpoint_every=2,
                        after_step=kill)  # fmt: skip
    assert (tmp_path / "resume" / "state.json").is_file()
    steps = []
    again = TinyGenerator(TinyGeneratorConfig(**SMALL))  # a new process: fresh weights, state from disk
    train_generator(again, data, cfg, resume_dir=tmp_path / "resume", checkpoint_every=2,
                    after_step=steps.append)  # fmt: skip
    assert steps == [5, 6]  # redid only what was missing
    assert not (tmp_path / "resume").exists()
    for k, v in straight.net.state_dict().items():
        assert torch.equal(again.net.state_dict()[k], v), k


def test_resume_key_is_the_data_content_not_its_count():
    gen = TinyGenerator(TinyGeneratorConfig(**SMALL))
    data = {"image": torch.rand(8, 3, 32, 32), "control": torch.rand(8, 3, 32, 32)}
    cfg = GeneratorTraining(steps=6, batch_size=4)
    key = generator_resume_key(gen, data, cfg)
    assert key == generator_resume_key(gen, {k: v.clone() for k, v in data.items()}, cfg)  # a rerun resumes
    other = {**data, "image": data["image"].clone()}
    other["image"][3, 0, 0, 0] = 1 - other["image"][3, 0, 0, 0]  # same count, same settings, one pixel differs
    assert generator_resume_key(gen, other, cfg) != key
    a, b = ({"data": d} for d in ("shards-a", "shards-b"))  # what the asset passes: the shard index's digest
    assert generator_resume_key(gen, data, cfg, a) == generator_resume_key(gen, other, cfg, a)
    assert generator_resume_key(gen, data, cfg, a) != generator_resume_key(gen, data, cfg, b)


def test_killed_training_starts_over_when_its_data_changed(tmp_path):
    data = {"image": torch.rand(16, 3, 32, 32), "control": torch.rand(16, 3, 32, 32)}
    cfg = GeneratorTraining(steps=6, batch_size=4, seed=3)

    def kill(step):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_generator(TinyGenerator(TinyGeneratorConfig(**SMALL)), data, cfg,
                        resume_dir=tmp_path / "resume", checkpoint_every=2, after_step=kill,
                        inputs={"data": "before"})  # fmt: skip
    steps = []
    train_generator(TinyGenerator(TinyGeneratorConfig(**SMALL)), data, cfg, resume_dir=tmp_path / "resume",
                    checkpoint_every=2, after_step=steps.append, inputs={"data": "after"})  # fmt: skip
    assert steps == [1, 2, 3, 4, 5, 6]  # the saved state of other data was not resumed


def test_training_from_shards_resumes_to_the_same_weights(tmp_path):
    """The asset's path: batches streamed from shards (uint8 until the device). A killed run
    restarts the stream at its step, so the weights equal an uninterrupted run's."""
    from dreamer_core.datasets.torch_dataset import sample_stream
    from tests.dreamer_core.datasets.test_shards import make_sample, write

    for shard in range(3):
        write(tmp_path, [make_sample(5 * shard + i, size=32) for i in range(5)], f"shard-{shard:06d}.tar")
    stream = sample_stream([tmp_path], ("image", "control"), batch_size=4, seed=3)
    cfg = GeneratorTraining(steps=6, batch_size=4, seed=3)
    torch.manual_seed(0)
    straight = TinyGenerator(TinyGeneratorConfig(**SMALL))
    fresh = {k: v.clone() for k, v in straight.net.state_dict().items()}
    train_generator(straight, stream, cfg)
    assert not torch.equal(straight.net.state_dict()["unet.conv_in.weight"], fresh["unet.conv_in.weight"])

    def kill(step):
        if step == 5:
            raise KeyboardInterrupt

    killed = TinyGenerator(TinyGeneratorConfig(**SMALL))
    killed.net.load_state_dict(fresh)
    with pytest.raises(KeyboardInterrupt):
        train_generator(killed, stream, cfg, resume_dir=tmp_path / "resume", checkpoint_every=2, after_step=kill)
    steps = []
    again = TinyGenerator(TinyGeneratorConfig(**SMALL))
    train_generator(again, stream, cfg, resume_dir=tmp_path / "resume", checkpoint_every=2, after_step=steps.append)
    assert steps == [5, 6]
    for k, v in straight.net.state_dict().items():
        assert torch.equal(again.net.state_dict()[k], v), k
    other = sample_stream([tmp_path], ("image", "control"), batch_size=4, seed=4)  # same shards, other order
    for inputs in (None, {"data": "the shard index"}):
        assert generator_resume_key(again, stream, cfg, inputs) != generator_resume_key(again, other, cfg, inputs)
