"""Generation rounds: which poses a shard draws, and one shard's samples (control render ->
generated image -> OKS of the pose detector against the label).

Round 1 draws training poses uniformly; round 2 draws from the poses the hardness model predicts
hardest out of sample (out-of-fold for poses round 1 saw; a curriculum). Every random choice comes
from a stream seeded by (global seed, round, shard[, index]), so a shard regenerates bit for bit
and a new shard name means fresh seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dreamer_core.config import RenderSettings
from dreamer_core.datasets.build import BuildReport, render_samples
from dreamer_core.datasets.shards import Sample
from dreamer_core.generate.base import generate_batched
from dreamer_core.generate.evaluate import detect, per_sample_oks
from dreamer_core.images import stack_coco_keypoints, to_uint8
from dreamer_core.keypoints.metrics import mask_area
from dreamer_core.poses.bank import PoseBank
from dreamer_core.seeds import derive_seed, stream
from dreamer_core.threads import fixed_threads

Progress = Callable[[int, int], None]


def draw_random(pool: np.ndarray, n: int, seed: int, shard: str) -> np.ndarray:
    """Round 1: ``n`` rows drawn uniformly (with replacement) from ``pool``."""
    return pool[stream(seed, "round1-draw", shard).integers(0, len(pool), n)]


def hard_pool(pool: np.ndarray, predicted_oks: np.ndarray, fraction: float) -> np.ndarray:
    """The ``fraction`` of ``pool`` rows with the lowest predicted OKS (ties by row, stable)."""
    k = max(1, int(round(fraction * len(pool))))
    order = np.lexsort((pool, predicted_oks[pool]))
    return pool[order[:k]]


def draw_hard(pool: np.ndarray, predicted_oks: np.ndarray, fraction: float, n: int, seed: int,
              shard: str) -> np.ndarray:  # fmt: skip
    """Round 2: ``n`` rows drawn uniformly from the hardest ``fraction`` of ``pool``."""
    hard = hard_pool(pool, predicted_oks, fraction)
    return hard[stream(seed, "round2-draw", shard).integers(0, len(hard), n)]


def sample_key(round_index: int, shard: str, i: int) -> str:
    return f"r{round_index}-{shard}-{i:05d}"


@dataclass
class ShardResult:
    samples: list[Sample]
    rows: list[dict[str, Any]]  # manifest rows (scalars only)
    oks: np.ndarray


@fixed_threads()  # the same bytes from a serial run, a backfill worker or a Dagster step: body model, scoring too
def generate_shard(
    body: Any, renderer: Any, bank: PoseBank, rows: np.ndarray, render: RenderSettings, generator: Any,
    detector: Any, seed: int, round_index: int, shard: str, batch_size: int,
    prompts_for: Callable[[list[str]], list[str]], progress: Progress | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> ShardResult:  # fmt: skip
    """Render the control of each drawn pose, generate its image with a per-sample seed, and score
    it by OKS against the label. ``extra`` holds per-sample columns for the manifest."""
    report = BuildReport()
    purpose = f"round{round_index}-{shard}"
    controls = render_samples(body, renderer, bank, rows, render, seed, purpose, "", False, report, purpose)
    if len(controls) != len(rows):
        raise RuntimeError(f"{shard}: {len(rows) - len(controls)} poses had no valid camera ({dict(report.skipped)})")
    ctl = torch.from_numpy(np.stack([s.control for s in controls])).permute(0, 3, 1, 2).float() / 255.0
    keys = [sample_key(round_index, shard, i) for i in range(len(rows))]
    prompts = prompts_for(keys)
    seeds = [derive_seed(seed, "round", round_index, shard, i) for i in range(len(rows))]
    images = generate_batched(generator, ctl, prompts, seeds, batch_size, progress)
    detected = detect(detector, images)["keypoints"].numpy()
    kp = stack_coco_keypoints(controls)
    area = mask_area(np.stack([s.mask for s in controls]))  # COCO's s^2: the label's person-mask area
    oks = per_sample_oks(detected, kp, area)
    pixels = to_uint8(images)
    samples, manifest = [], []
    for i, (key, s) in enumerate(zip(keys, controls, strict=True)):
        cols = {name: values[i].item() for name, values in (extra or {}).items()}
        labels = {**s.labels, "round": round_index, "shard": shard, "generation_seed": seeds[i],
                  "prompt": prompts[i], "oks": None if not np.isfinite(oks[i]) else float(oks[i]),
                  "bank_row": int(rows[i]), **cols}  # fmt: skip
        samples.append(Sample(key, pixels[i], s.control, s.mask, labels))
        manifest.append({"key": key, "shard": shard, "round": round_index, "index": i, "bank_row": int(rows[i]),
                         "pose_id": s.labels["pose_id"], "seed": seeds[i], "camera_seed": s.labels["seed"],
                         "prompt": prompts[i], "oks": float(oks[i]), "body_model": s.labels["body_model"],
                         "focal": float(np.asarray(s.labels["K"])[0][0]), **cols})  # fmt: skip
    return ShardResult(samples, manifest, oks)
