"""What every training loop here shares (HMR, GST, the tiny generator, DPO): the warm-up + cosine
schedule, the optimiser step with gradient clipping, resuming a killed run, and the loss report (a
running average logged to the tracker every ``log_every`` steps and as a progress line ten times a run)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dreamer_core.resume import load_state
from dreamer_core.tracking import Tracker


def warmup_cosine(opt: torch.optim.Optimizer, steps: int, warmup: int,
                  floor: float = 0.05) -> torch.optim.lr_scheduler.LambdaLR:  # fmt: skip
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``floor`` of the learning rate."""
    rest = 1 - floor
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (floor + rest * 0.5 * (1 + math.cos(math.pi * s / steps)))
    )


def optimiser_step(loss: torch.Tensor, params: list[torch.nn.Parameter] | object, opt: torch.optim.Optimizer,
                   sched: torch.optim.lr_scheduler.LRScheduler | None, clip: float | None = 1.0) -> None:  # fmt: skip
    """Backward, clip the gradient norm to ``clip`` (None: no clipping), step the optimiser (and the
    schedule, if any)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    if sched is not None:
        sched.step()


class LossReport:
    """Running (EMA 0.9) losses; ``detail`` names the terms shown next to the total in progress lines."""

    def __init__(self, steps: int, log_every: int, tracker: Tracker, say: Callable[[str], None],
                 detail: dict[str, str]) -> None:  # fmt: skip
        self.steps, self.log_every, self.tracker, self.say, self.detail = steps, log_every, tracker, say, detail
        self.running: dict[str, float] | None = None
        self.t0 = time.perf_counter()

    def update(self, step: int, losses: dict[str, torch.Tensor], lr: float) -> None:
        """After optimiser step ``step`` (1-based)."""
        values = {k: v.item() for k, v in losses.items()}
        r = self.running
        self.running = r = values if r is None else {k: 0.9 * r[k] + 0.1 * v for k, v in values.items()}
        if step % self.log_every == 0 or step == self.steps:
            self.tracker.log_metrics({f"loss_{k}": v for k, v in r.items()} | {"lr": lr}, step=step)
        if step % max(self.steps // 10, 1) == 0:
            parts = ", ".join(f"{label} {r[k]:.4f}" for k, label in self.detail.items())
            parts = f" ({parts})" if parts else ""
            self.say(f"step {step}/{self.steps}: loss {r['total']:.4f}{parts} {time.perf_counter() - self.t0:.0f} s")

    @property
    def final(self) -> float:
        return float(self.running["total"]) if self.running else 0.0

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0


def resume_step(resume_dir: str | Path | None, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer,
                rng: torch.Generator, fingerprint: dict[str, Any]) -> int:  # fmt: skip
    """The step a killed run continues from (0: nothing saved for this fingerprint)."""
    return load_state(resume_dir, modules, opt, rng, fingerprint) if resume_dir else 0


def fast_forward(sched: torch.optim.lr_scheduler.LRScheduler, start: int, say: Callable[[str], None], what: str,
                 steps: int, resume_dir: str | Path | None) -> None:  # fmt: skip
    """Bring the schedule to ``start`` and say that training resumes there."""
    for _ in range(start):
        sched.step()
    if start:
        say(f"resuming {what} training at step {start}/{steps} from {resume_dir}")
