"""Training GST from calibrated multi-view subjects.

Each step draws subjects, one input view each (resized to the HMR input side) and several target
views; the predicted Gaussians are rendered into the target cameras (relative to the input one)
over a flat background and compared with the person composited on the same background. Loss:
photometric MSE + alpha-vs-mask MSE + an offset "tightness" penalty (Gaussians stay near their
vertices). LPIPS is not part of the loss: its network weights cannot be had offline here, and the
checkpoint's summary says so. Resumable like HMR training (``dreamer_core.resume``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from avatar_core.gst.assemble import Assembler, relative_viewmats
from avatar_core.gst.data import Views, on_background
from avatar_core.gst.model import GST
from avatar_core.raster import rasterization
from dreamer_core.config import GSTSettings
from dreamer_core.datasets.stream import ShardStream, to_device
from dreamer_core.resume import clear_state, resume_key, save_state
from dreamer_core.tracking import NullTracker, Tracker
from dreamer_core.training import LossReport, fast_forward, optimiser_step, resume_step, warmup_cosine

BACKGROUND = 0.0  # black: where no Gaussian is, the render is the background


@dataclass(frozen=True)
class GSTTraining:
    """One training run. Fields that are settings take their defaults from ``GSTSettings`` (one
    definition); the pipeline passes every one of them (``GSTSettings.training_fields``)."""

    steps: int = GSTSettings.steps
    subjects_per_step: int = GSTSettings.subjects_per_step
    target_views: int = GSTSettings.target_views
    lr: float = GSTSettings.lr
    backbone_lr: float = GSTSettings.backbone_lr  # the pretrained HMR parts move slower than the new heads
    mask_weight: float = GSTSettings.mask_weight
    tightness_weight: float = GSTSettings.tightness_weight
    seed: int = 0
    log_every: int = 25


def input_batch(views: Views, subject: torch.Tensor, view: torch.Tensor, size: int) -> torch.Tensor:
    images = views["images"][subject, view]
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images.clamp(0, 1)


def render_targets(
    model: GST,
    assembler: Assembler,
    views: Views,
    subject: torch.Tensor,
    view: torch.Tensor,
    targets: torch.Tensor,
    pred: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, ...]:
    """(rendered colours [B, T, H, W, 3], alphas [B, T, H, W, 1], predictions) of the target views."""
    size = views["images"].shape[-1]
    if pred is None:
        pred = model(input_batch(views, subject, view, model.hmr.cfg.image_size))
    K_in = views["K"][subject, view]
    g = assembler.gaussians(pred, K_in, float(size))
    vm = relative_viewmats(views["viewmats"][subject, view], views["viewmats"][subject[:, None], targets])
    background = torch.full((*targets.shape, 3), BACKGROUND, device=vm.device)
    rgb, alpha, _ = rasterization(g["means"], g["quats"], g["scales"], g["opacities"], g["colors"], vm,
                                  views["K"][subject[:, None], targets], size, size, sh_degree=model.cfg.sh_degree,
                                  backgrounds=background)  # fmt: skip
    return rgb, alpha, pred


def gst_losses(model: GST, assembler: Assembler, views: Views, subject: torch.Tensor, view: torch.Tensor,
               targets: torch.Tensor, cfg: GSTTraining) -> dict[str, torch.Tensor]:  # fmt: skip
    rgb, alpha, pred = render_targets(model, assembler, views, subject, view, targets)
    images = views["images"][subject[:, None], targets].permute(0, 1, 3, 4, 2)
    masks = views["masks"][subject[:, None], targets].permute(0, 1, 3, 4, 2)
    losses = {
        "photometric": (rgb - on_background(images, masks, BACKGROUND)).pow(2).mean(),
        "mask": (alpha - masks).pow(2).mean(),
        "tightness": pred["offset"].pow(2).sum(-1).mean(),
    }
    losses["total"] = (
        losses["photometric"] + cfg.mask_weight * losses["mask"] + cfg.tightness_weight * losses["tightness"]
    )
    return losses


def step_views(views: Views, subject: torch.Tensor, device: torch.device) -> tuple[Views, torch.Tensor]:
    """The views of this step's subjects on ``device`` and their indices there: the set stays in
    host memory, one step's subjects go to the GPU."""
    picked = {k: v[subject].to(device, non_blocking=True) for k, v in views.items()}
    return picked, torch.arange(len(subject), device=device)


def _step_subjects(data: Views | ShardStream, cfg: GSTTraining, rng: torch.Generator, device: torch.device,
                   start: int) -> Callable[[], tuple[Views, torch.Tensor]]:  # fmt: skip
    """What each step trains on: its subjects' views on ``device`` and their indices there."""
    if isinstance(data, ShardStream):
        if data.batch_size != cfg.subjects_per_step:
            raise ValueError(f"the stream gives {data.batch_size} subjects a step, the training asks for "
                             f"{cfg.subjects_per_step}")  # fmt: skip
        batches = data.batches(start)

        def streamed() -> tuple[Views, torch.Tensor]:
            picked = to_device(next(batches), device)
            return picked, torch.arange(len(picked["images"]), device=device)

        return streamed
    num_subjects = data["images"].shape[0]

    def drawn() -> tuple[Views, torch.Tensor]:
        return step_views(data, torch.randint(0, num_subjects, (cfg.subjects_per_step,), generator=rng), device)

    return drawn


def gst_resume_key(model: GST, data: Views | ShardStream, cfg: GSTTraining,
                   inputs: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The fingerprint a saved GST state must match (see ``resume.resume_key``). GST starts from an
    HMR checkpoint, so ``inputs`` should name those weights' file fingerprint as well as the
    multi-view data's (``orchestration.train_gst`` passes both); without ``inputs`` only the views
    are hashed, since the weights handed in are replaced by the saved state on resume."""
    if isinstance(data, ShardStream):  # the stream's order too: a resumed run must see the same batches
        stream = {"data": data.fingerprint(), "seed": data.seed, "mix": data.mix, "rank": data.rank,
                  "world": data.world, "batch": data.batch_size}  # fmt: skip
        key = resume_key(asdict(cfg), model.config_dict(), inputs or {"data": data.fingerprint()}, {})
        return {**key, "stream": stream}
    return resume_key(asdict(cfg), model.config_dict(), inputs, data, num_subjects=int(data["images"].shape[0]))


def train_gst(
    model: GST,
    assembler: Assembler,
    data: Views | ShardStream,
    cfg: GSTTraining,
    tracker: Tracker | None = None,
    log: Callable[[str], None] | None = None,
    resume_dir: str | Path | None = None,
    checkpoint_every: int = 50,
    after_step: Callable[[int], None] | None = None,
    inputs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Trains ``model`` in place, on the device its weights are on. ``data`` is the training subjects'
    views in host memory (each step draws subjects with replacement and moves them, see
    ``step_views``) or, as the pipeline trains, a stream of subjects from the shards
    (``data.subject_stream``: every subject once per epoch, uint8 until on the device). With
    ``resume_dir`` the full state is saved every ``checkpoint_every`` steps and a rerun with the same
    key (``gst_resume_key``: settings, the HMR weights it starts from and the data, by content)
    continues from it (a stream resumes at its step's batch)."""
    tracker, say = tracker or NullTracker(), log or (lambda m: None)
    torch.manual_seed(cfg.seed)
    hmr_params = [p for p in model.hmr.parameters() if p.requires_grad]
    own = [p for n, p in model.named_parameters() if not n.startswith("hmr.")]
    opt = torch.optim.AdamW([{"params": own, "lr": cfg.lr}, {"params": hmr_params, "lr": cfg.backbone_lr}],
                            weight_decay=0.0)  # fmt: skip
    sched = warmup_cosine(opt, cfg.steps, min(50, cfg.steps // 10 + 1))
    rng = torch.Generator().manual_seed(cfg.seed)
    fingerprint = gst_resume_key(model, data, cfg, inputs) if resume_dir else {}
    start = resume_step(resume_dir, {"model": model}, opt, rng, fingerprint)
    device = next(model.parameters()).device
    next_subjects = _step_subjects(data, cfg, rng, device, start)
    fast_forward(sched, start, say, "GST", cfg.steps, resume_dir)
    report = LossReport(cfg.steps, cfg.log_every, tracker, say, {"photometric": "photometric", "mask": "mask"})
    model.train()
    for step in tqdm(range(start, cfg.steps), desc="gst", leave=False, disable=None):
        picked, local = next_subjects()
        num_views = picked["images"].shape[1]
        view = torch.randint(0, num_views, (len(local),), generator=rng)
        targets = torch.stack([torch.randperm(num_views, generator=rng)[: cfg.target_views]
                               for _ in range(len(local))])  # fmt: skip
        losses = gst_losses(model, assembler, picked, local, view.to(device), targets.to(device), cfg)
        optimiser_step(losses["total"], model.parameters(), opt, sched)
        report.update(step + 1, losses, sched.get_last_lr()[0])
        if resume_dir and (step + 1) % checkpoint_every == 0 and step + 1 < cfg.steps:
            save_state(resume_dir, step + 1, {"model": model}, opt, rng, fingerprint)
        if after_step:
            after_step(step + 1)
    if resume_dir:
        clear_state(resume_dir)
    model.eval()
    seconds, done = report.seconds, cfg.steps - start
    return {"final_loss": report.final, "seconds": seconds, "steps_run": done,
            "subjects_per_second": done * cfg.subjects_per_step / max(seconds, 1e-9)}  # fmt: skip


def describe(model: GST) -> dict[str, Any]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"gaussians": model.cfg.num_vertices, "trainable_parameters": trainable}
