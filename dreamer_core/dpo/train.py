"""DPO fine-tuning of a generator's LoRA adapters on (winner, loser, control) pairs, and the
before/after evaluation on held-out controls with fixed seeds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from dreamer_core.config import DPOSettings
from dreamer_core.datasets.stream import ShardStream, to_device
from dreamer_core.dpo.lora import LoraSettings, adapters_disabled, add_lora
from dreamer_core.dpo.objective import dpo_loss
from dreamer_core.generate.base import ControlGenerator, generate_batched
from dreamer_core.generate.evaluate import detect, per_sample_oks
from dreamer_core.keypoints.metrics import mask_area
from dreamer_core.seeds import derive_seed
from dreamer_core.tracking import NullTracker, Tracker
from dreamer_core.training import optimiser_step


@dataclass(frozen=True)
class DPOTraining:
    """One training run. Fields that are settings take their defaults from ``DPOSettings``."""

    steps: int
    batch_pairs: int = DPOSettings.batch_pairs
    lr: float = DPOSettings.lr
    beta: float = DPOSettings.beta
    seed: int = 0
    lora: LoraSettings = field(default_factory=LoraSettings)
    log_every: int = 10


Draw = Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]]


def train_dpo(
    gen: ControlGenerator,
    winners: torch.Tensor,
    losers: torch.Tensor,
    controls: torch.Tensor,
    prompts: list[str],
    cfg: DPOTraining,
    tracker: Tracker | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Trains on pairs held in host memory (floats in [0, 1]), drawn with replacement: for sets
    that fit, such as a sweep's or a test's. The pipeline streams them (``train_dpo_stream``)."""
    if len(winners) == 0:
        raise ValueError("no preference pairs to train on: loosen dpo.min_gap / dpo.min_winner_oks or add candidates")
    n = min(cfg.batch_pairs, len(winners))

    def draw(rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
        idx = torch.randint(0, len(winners), (n,), generator=rng)
        return winners[idx], losers[idx], controls[idx], [prompts[i] for i in idx.tolist()]

    return _train(gen, draw, cfg, tracker, log)


def train_dpo_stream(
    gen: ControlGenerator,
    stream: ShardStream,
    prompts: list[str],
    cfg: DPOTraining,
    tracker: Tracker | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Trains on pairs streamed from the candidate shards (``pair_stream.pair_stream``): every pair
    once per epoch, uint8 until on the device; ``prompts`` are the pair table's, by row."""
    if stream.batch_size != min(cfg.batch_pairs, stream.num_samples):
        raise ValueError(f"the stream gives {stream.batch_size} pairs a step, the training asks for "
                         f"{min(cfg.batch_pairs, stream.num_samples)}")  # fmt: skip
    batches = stream.batches()

    def draw(rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
        b = next(batches)
        return b["winner"], b["loser"], b["control"], [prompts[i] for i in b["pair"].tolist()]

    return _train(gen, draw, cfg, tracker, log)


def _train(gen: ControlGenerator, draw: Draw, cfg: DPOTraining, tracker: Tracker | None,
           log: Callable[[str], None] | None) -> dict[str, float]:  # fmt: skip
    """Adds LoRA adapters to ``gen.denoiser`` and trains them on the batches ``draw`` gives; the
    reference is the same network with adapters disabled. Trains on the generator's device (each
    batch moves there; uint8 images become floats there). Returns the last step's statistics."""
    tracker = tracker or NullTracker()
    say = log or (lambda m: None)
    torch.manual_seed(cfg.seed)
    net, device = gen.denoiser, gen.device
    params = add_lora(net, cfg.lora)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    rng = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    stats: dict[str, float] = {}
    net.train()
    for step in tqdm(range(cfg.steps), desc="dpo", leave=False, disable=None):
        batch_w, batch_l, batch_c, p = draw(rng)
        moved = to_device({"w": batch_w, "l": batch_l, "c": batch_c}, device)
        w, lo, c = moved["w"], moved["l"], moved["c"]
        t = gen.draw_timesteps(len(w), rng).to(device)
        noise = gen.draw_noise(w, rng)
        x, cc, tt, nn_ = torch.cat([w, lo]), torch.cat([c, c]), torch.cat([t, t]), torch.cat([noise, noise])
        model_err = gen.loss(x, cc, p + p, tt, nn_)
        with torch.no_grad(), adapters_disabled(net):
            ref_err = gen.loss(x, cc, p + p, tt, nn_)
        mw, ml = model_err.chunk(2)
        rw, rl = ref_err.chunk(2)
        loss, stats = dpo_loss(mw, ml, rw, rl, cfg.beta)
        optimiser_step(loss, params, opt, None)  # a constant learning rate
        stats["loss"] = loss.item()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            tracker.log_metrics(stats, step=step + 1)
        if (step + 1) % max(cfg.steps // 5, 1) == 0:
            say(f"dpo step {step + 1}/{cfg.steps}: loss {stats['loss']:.4f}, "
                f"implicit accuracy {stats['implicit_accuracy']:.2f} ({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    net.eval()
    return {**stats, "seconds": time.perf_counter() - t0}


def heldout_seeds(seed: int, num_seeds: int, num_controls: int) -> list[list[int]]:
    return [[derive_seed(seed, "heldout", s, i) for i in range(num_controls)] for s in range(num_seeds)]


@torch.no_grad()
def heldout_oks(
    gen: ControlGenerator,
    detectors: dict[str, object],
    controls: torch.Tensor,
    keypoints: torch.Tensor,
    masks: torch.Tensor,
    seeds: list[list[int]],
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """OKS [num_seeds, num_controls] per detector for samples of ``gen`` from fixed seeds, against
    the controls' labels (keypoints [N, 17, 3]; person masks [N, 1, H, W], whose pixel count is the
    OKS area, as in COCO). ``progress`` is told how many samples each seed's row made."""
    out: dict[str, list[np.ndarray]] = {name: [] for name in detectors}
    kp, area = keypoints.numpy(), mask_area(masks)
    for row in seeds:
        images = generate_batched(gen, controls, [""] * len(controls), row, batch_size)
        for name, det in detectors.items():
            pred = detect(det, images)["keypoints"].numpy()
            out[name].append(per_sample_oks(pred, kp, area))
        if progress:
            progress(len(row))
    return {k: np.stack(v) for k, v in out.items()}


HeldoutChunk = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # controls [n, 3, H, W], keypoints, masks


def compare_before_after(
    gen: ControlGenerator,
    detectors: dict[str, object],
    held: Iterable[HeldoutChunk],
    seeds: list[list[int]],
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Same controls, same seeds, adapters off vs on: mean OKS before/after, and the spread over
    seeds of the per-seed mean change. ``held`` gives the held-out controls a chunk at a time
    (controls as floats in [0, 1], keypoints [n, 17, 3], person masks [n, 1, H, W]: the OKS area),
    in the order of ``seeds``' columns; each sample's seed is its own, so the chunking changes no
    sample, and memory holds one chunk of controls, not the split. ``progress(made, total)`` follows
    the samples made (before and after: 2 x seeds x controls)."""
    parts: dict[str, dict[str, list[np.ndarray]]] = {"before": {}, "after": {}}
    done, made, total = 0, [0], 2 * len(seeds) * len(seeds[0])

    def count(n: int) -> None:
        made[0] += n
        if progress:
            progress(made[0], total)

    for controls, keypoints, masks in held:
        rows = [row[done : done + len(controls)] for row in seeds]
        with adapters_disabled(gen.denoiser):
            before = heldout_oks(gen, detectors, controls, keypoints, masks, rows, progress=count)
        after = heldout_oks(gen, detectors, controls, keypoints, masks, rows, progress=count)
        for when, scores in (("before", before), ("after", after)):
            for name, v in scores.items():
                parts[when].setdefault(name, []).append(v)
        done += len(controls)
    if done != len(seeds[0]):
        raise ValueError(f"{done} held-out controls given, {len(seeds[0])} seeded")
    result: dict[str, float] = {}
    for name in detectors:
        b, a = np.concatenate(parts["before"][name], axis=1), np.concatenate(parts["after"][name], axis=1)
        delta = np.nanmean(a, axis=1) - np.nanmean(b, axis=1)
        prefix = "heldout_oks" if name == "reward" else f"{name}_oks"
        result[f"{prefix}_before"] = float(np.nanmean(b))
        result[f"{prefix}_after"] = float(np.nanmean(a))
        result[f"{prefix}_delta"] = float(delta.mean())
        result[f"{prefix}_delta_std"] = float(delta.std(ddof=1)) if len(delta) > 1 else 0.0
    return result
