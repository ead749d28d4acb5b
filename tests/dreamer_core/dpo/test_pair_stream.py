"""DPO pairs streamed from candidate shards: every pair once per epoch with its own images, control
and prompt row, the same batches for any number of workers, clear errors for pairs the shards do
not hold, and the streamed training loop learning from exactly those batches."""

import dataclasses

import pytest
import torch

from dreamer_core.datasets.shards import ShardError
from dreamer_core.dpo.candidates import candidate_key
from dreamer_core.dpo.lora import LoraSettings
from dreamer_core.dpo.pair_stream import pair_refs, pair_stream
from dreamer_core.dpo.train import DPOTraining, _train, train_dpo, train_dpo_stream
from dreamer_core.generate.tiny import TinyGenerator, TinyGeneratorConfig
from tests.dreamer_core.datasets.test_shards import make_sample, write

SIZE = 32


def _candidates(folder, controls: int, per_shard: int, n_cand: int = 3):
    """Candidate shards as dpo_pairs writes them: a control's candidates share one shard."""
    samples = []
    for c in range(controls):
        base = make_sample(c, size=SIZE)
        for j in range(n_cand):
            s = make_sample(1000 + c * n_cand + j, size=SIZE)
            samples.append(dataclasses.replace(s, key=candidate_key(base.key, j), control=base.control))
    step = per_shard * n_cand
    for i in range(0, len(samples), step):
        write(folder, samples[i : i + step], f"shard-{i // step:06d}.tar")
    return {s.key: s for s in samples}


def _pairs(controls: int):
    winners = [candidate_key(f"s{c:06d}", c % 3) for c in range(controls)]
    losers = [candidate_key(f"s{c:06d}", (c + 1) % 3) for c in range(controls)]
    return winners, losers


def test_every_pair_once_per_epoch_with_its_images_and_row(tmp_path):
    found = _candidates(tmp_path, controls=7, per_shard=3)  # shards of 3, 3, 1 controls
    winners, losers = _pairs(7)
    refs, _ = pair_refs(tmp_path, winners, losers)
    assert [r.num_samples for r in refs] == [3, 3, 1]
    stream = pair_stream(tmp_path, winners, losers, batch_pairs=7, seed=3)
    batch = next(stream.batches())
    assert sorted(batch["pair"].tolist()) == list(range(7))  # one epoch = one batch of every pair
    assert batch["winner"].dtype == torch.uint8
    for row, w, lo, c in zip(batch["pair"].tolist(), batch["winner"], batch["loser"], batch["control"], strict=True):
        assert torch.equal(w, torch.from_numpy(found[winners[row]].image).permute(2, 0, 1))
        assert torch.equal(lo, torch.from_numpy(found[losers[row]].image).permute(2, 0, 1))
        assert torch.equal(c, torch.from_numpy(found[winners[row]].control).permute(2, 0, 1))


def test_batches_do_not_depend_on_workers(tmp_path):
    _candidates(tmp_path, controls=9, per_shard=2)
    winners, losers = _pairs(9)
    runs = []
    for workers in (0, 2):
        it = pair_stream(tmp_path, winners, losers, batch_pairs=4, seed=1, workers=workers).batches()
        runs.append([next(it) for _ in range(5)])  # crosses an epoch (9 pairs)
    for a, b in zip(*runs, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    epoch = torch.cat([b["pair"] for b in runs[0]])[:9]
    assert sorted(epoch.tolist()) == list(range(9))


def test_pairs_the_shards_do_not_hold_are_errors(tmp_path):
    _candidates(tmp_path, controls=4, per_shard=2)
    winners, losers = _pairs(4)
    with pytest.raises(ShardError, match="pair 1 .* not in one candidate shard"):
        pair_refs(tmp_path, winners, [losers[0], candidate_key("s000001", 7), *losers[2:]])
    with pytest.raises(ShardError, match="not in one candidate shard"):  # winner and loser in two shards
        pair_refs(tmp_path, winners, [losers[0], losers[3], *losers[2:]])
    with pytest.raises(ValueError, match="no preference pairs"):
        pair_refs(tmp_path, [], [])


def test_streamed_training_sees_each_pair_with_its_own_images_and_prompt(tmp_path):
    """``train_dpo_stream`` gives the weights of the training loop fed, in the stream's order, each
    pair's images made floats on the host and its own prompt (a misaligned prompt or a wrong
    uint8 conversion would change them)."""
    found = _candidates(tmp_path, controls=5, per_shard=2)
    winners, losers = _pairs(5)
    prompts = [f"a person {i}" for i in range(5)]
    cfg = DPOTraining(steps=4, batch_pairs=3, lora=LoraSettings(rank=2, alpha=2.0, targets=("to_q", "conv1")))
    small = TinyGeneratorConfig(image_size=SIZE, unshuffle=2, block_out_channels=(16, 32), sample_steps=2)
    torch.manual_seed(0)
    base = TinyGenerator(small).denoiser.state_dict()

    class Recording(TinyGenerator):  # the tiny generator ignores prompts: record what reaches it
        def loss(self, images, controls, prompts, timesteps, noise):  # noqa: ANN001, ANN201
            self.seen = [*getattr(self, "seen", []), list(prompts)]
            return super().loss(images, controls, prompts, timesteps, noise)

    def fresh() -> Recording:
        gen = Recording(small)
        gen.denoiser.load_state_dict(base)
        return gen

    streamed = fresh()
    train_dpo_stream(streamed, pair_stream(tmp_path, winners, losers, 3, seed=cfg.seed), prompts, cfg)

    order = pair_stream(tmp_path, winners, losers, 3, seed=cfg.seed).batches()
    replay = iter([next(order)["pair"].tolist() for _ in range(cfg.steps)])

    def floats(keys, field="image"):
        return torch.stack([torch.from_numpy(getattr(found[k], field)).permute(2, 0, 1).float() / 255 for k in keys])

    def draw(rng):
        r = next(replay)
        return (floats([winners[i] for i in r]), floats([losers[i] for i in r]),
                floats([winners[i] for i in r], "control"), [prompts[i] for i in r])  # fmt: skip

    replayed = fresh()
    _train(replayed, draw, cfg, None, None)
    got, want = streamed.denoiser.state_dict(), replayed.denoiser.state_dict()
    lora_b = [k for k in got if "lora_B" in k]  # peft starts B at zero
    assert lora_b and any(got[k].abs().sum() > 0 for k in lora_b)  # it trained
    assert all(torch.equal(got[k], want[k]) for k in got)
    assert streamed.seen == replayed.seen and len(streamed.seen) == 2 * cfg.steps  # model and reference
    assert len(set(map(tuple, streamed.seen))) > 1


def test_in_memory_training_refuses_no_pairs():
    cfg = DPOTraining(steps=1)
    gen = TinyGenerator(TinyGeneratorConfig(image_size=SIZE, unshuffle=2, block_out_channels=(16, 32), sample_steps=2))
    empty = torch.zeros(0, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="no preference pairs"):
        train_dpo(gen, empty, empty, empty, [], cfg)
