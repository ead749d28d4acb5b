"""Training loop of the tiny generator: AdamW, cosine decay, an exponential moving average of the
weights (what gets sampled and saved), optional min-SNR loss weighting.

Why EMA and min-SNR: with a few hundred to a few thousand CPU steps the raw weights are noisy and
their samples grainy; averaging them is free quality. Min-SNR (Hang et al., 2023) stops the
easy low-noise timesteps from dominating the gradient, which is where short runs waste steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dreamer_core.config import GeneratorSettings
from dreamer_core.datasets.stream import ShardStream, to_device
from dreamer_core.devices import autocast
from dreamer_core.generate.tiny import TinyGenerator
from dreamer_core.resume import clear_state, resume_key, save_state
from dreamer_core.tracking import NullTracker, Tracker
from dreamer_core.training import LossReport, fast_forward, optimiser_step, resume_step, warmup_cosine


@dataclass(frozen=True)
class GeneratorTraining:
    """One training run. Fields that are settings take their defaults from ``GeneratorSettings``."""

    steps: int
    batch_size: int = GeneratorSettings.batch_size
    lr: float = GeneratorSettings.lr
    ema_decay: float = GeneratorSettings.ema_decay
    min_snr_gamma: float = 5.0  # 0 disables the weighting
    control_dropout: float = GeneratorSettings.control_dropout  # share trained without control (enables guidance)
    seed: int = 0
    log_every: int = 25


def snr_weights(gen: TinyGenerator, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    if gamma <= 0 or gen.objective in ("flow", "sample"):
        return torch.ones(len(timesteps), device=timesteps.device)
    abar = gen.scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    snr = abar / (1 - abar)
    w = snr.clamp(max=gamma)
    return w / (snr + 1) if gen.objective == "v_prediction" else w / snr


GeneratorData = ShardStream | dict[str, torch.Tensor]  # a stream of, or a set of, "image" / "control"


def generator_resume_key(gen: TinyGenerator, data: GeneratorData, cfg: GeneratorTraining,
                         inputs: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The fingerprint a saved generator state must match (see ``resume.resume_key``): the tiny
    generator starts from seeded fresh weights (seed and config are in the key), so its content
    is the training data: ``inputs`` or, without them, the stream's shard hashes or the tensors."""
    if isinstance(data, ShardStream):  # its batch sequence: the shards and how they are dealt
        order = {"stream_seed": data.seed, "mix": data.mix, "rank": data.rank, "world": data.world,
                 "stream_batch": data.batch_size}  # fmt: skip
        content: dict[str, Any] = {"stream": data.fingerprint()}
        return resume_key(asdict(cfg), repr(gen.cfg), inputs, content, num_samples=data.num_samples, **order)
    content = {"images": data["image"], "controls": data["control"]}
    return resume_key(asdict(cfg), repr(gen.cfg), inputs, content, num_samples=len(data["image"]))


def _batches(data: GeneratorData, cfg: GeneratorTraining, rng: torch.Generator, start: int) -> Iterator[dict]:
    """Training batches from step ``start`` on: the stream's own (shards in a seeded order, each
    sample once per epoch), or drawn with replacement from a set in memory with ``rng``."""
    if isinstance(data, ShardStream):
        if data.batch_size != cfg.batch_size:
            raise ValueError(f"the stream makes batches of {data.batch_size}, the training wants {cfg.batch_size}")
        yield from data.batches(start)
        return
    n = len(data["image"])
    while True:
        idx = torch.randint(0, n, (cfg.batch_size,), generator=rng)
        yield {"image": data["image"][idx], "control": data["control"][idx]}


def train_generator(
    gen: TinyGenerator,
    data: GeneratorData,
    cfg: GeneratorTraining,
    tracker: Tracker | None = None,
    log: Callable[[str], None] | None = None,
    resume_dir: str | Path | None = None,
    checkpoint_every: int = 100,
    after_step: Callable[[int], None] | None = None,
    inputs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Trains ``gen`` in place on (image, control) pairs; leaves the EMA weights in it. ``data`` is
    a ``ShardStream`` of "image" / "control" (``torch_dataset.sample_stream``: uint8 until the batch
    is on the device; what the asset uses, so no split is held) or a dict of such tensors in [0, 1]
    held in memory. It trains on the device its weights are on (``gen.to``), under bf16 autocast
    on CUDA.

    With ``resume_dir``, the full state is saved there every ``checkpoint_every`` steps and a
    rerun continues from it (same final weights as an uninterrupted run); it is removed at the end.
    ``inputs`` (content fingerprints of the training data, e.g. ``{"data": data_fingerprint(folder)}``)
    key that state to the data's bytes; without them the tensors are hashed instead.
    """
    tracker = tracker or NullTracker()
    say = log or (lambda m: None)
    torch.manual_seed(cfg.seed)
    net, device = gen.net, gen.device
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = warmup_cosine(opt, cfg.steps, min(100, cfg.steps // 10 + 1), floor=0.1)
    gen_rng = torch.Generator().manual_seed(cfg.seed)
    fingerprint = generator_resume_key(gen, data, cfg, inputs) if resume_dir else {}
    modules = {"net": net, "ema": ema}
    start = resume_step(resume_dir, modules, opt, gen_rng, fingerprint)
    fast_forward(sched, start, say, "generator", cfg.steps, resume_dir)
    report = LossReport(cfg.steps, cfg.log_every, tracker, say, {})
    net.train()
    batches = _batches(data, cfg, gen_rng, start)
    for step in tqdm(range(start, cfg.steps), desc="generator", leave=False, disable=None):
        batch = to_device(next(batches), device)
        x, c = batch["image"], batch["control"]
        if cfg.control_dropout > 0:
            keep = torch.rand(len(x), generator=gen_rng) >= cfg.control_dropout
            c = c * keep.to(device).view(-1, 1, 1, 1)
        t = gen.draw_timesteps(len(x), gen_rng).to(device)
        noise = gen.draw_noise(x, gen_rng)
        with autocast(device):
            per_sample = gen.loss(x, c, [""] * len(x), t, noise).float()
        loss = (per_sample * snr_weights(gen, t, cfg.min_snr_gamma)).mean()
        optimiser_step(loss, net.parameters(), opt, sched)
        _update_ema(ema, net, min(cfg.ema_decay, (1 + step) / (10 + step)))
        report.update(step + 1, {"total": loss}, sched.get_last_lr()[0])
        if resume_dir and (step + 1) % checkpoint_every == 0 and step + 1 < cfg.steps:
            save_state(resume_dir, step + 1, modules, opt, gen_rng, fingerprint)
        if after_step:
            after_step(step + 1)
    if resume_dir:
        clear_state(resume_dir)
    net.load_state_dict(ema.state_dict())
    net.eval()
    return {"final_loss": report.final, "seconds": report.seconds}


@torch.no_grad()
def _update_ema(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    for pe, p in zip(ema.parameters(), net.parameters(), strict=True):
        pe.lerp_(p, 1 - decay)
