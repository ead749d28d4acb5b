"""Training the HMR regressor on streamed batches, evaluating it on labelled samples held as tensors.

The loop is resumable (the full state in safetensors every N steps, see ``dreamer_core.resume``),
so the training entry point launched by the asset continues a killed run instead of restarting.
Evaluation reports MPJPE / PA-MPJPE on the 22 skeleton joints (pelvis-rooted) and PVE on the
mesh, in millimetres, for the model and for the mean-parameter baseline on the same samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from dreamer_core.bodies.rotations import matrix_to_axis_angle
from dreamer_core.config import HMRSettings
from dreamer_core.datasets.stream import ShardStream, slice_chunk
from dreamer_core.hmr.augment import flip_batch
from dreamer_core.hmr.camera import translation_to_weak_perspective
from dreamer_core.hmr.data import EvalSet, ParameterMean, as_float, memory_stream, set_chunks, training_mean_of
from dreamer_core.hmr.losses import LossWeights, hmr_losses
from dreamer_core.hmr.model import HMR
from dreamer_core.hmr.rotations import rot6d_to_matrix
from dreamer_core.metrics.pose3d import mpjpe, pa_mpjpe, pve
from dreamer_core.resume import clear_state, resume_key, save_state
from dreamer_core.tracking import NullTracker, Tracker
from dreamer_core.training import LossReport, fast_forward, optimiser_step, resume_step, warmup_cosine


@dataclass(frozen=True)
class HMRTraining:
    """One training run. Fields that are settings take their defaults from ``HMRSettings`` (one
    definition); the pipeline passes every one of them (``HMRSettings.training_fields``)."""

    steps: int = HMRSettings.steps
    batch_size: int = HMRSettings.batch_size
    lr: float = HMRSettings.lr
    weight_decay: float = HMRSettings.weight_decay
    seed: int = 0
    log_every: int = 25
    flip: float = HMRSettings.flip  # share of each batch mirrored (labels follow exactly, see hmr.augment)
    weights: LossWeights = field(default_factory=LossWeights)


def set_mean_from(model: HMR, data: dict[str, torch.Tensor]) -> None:
    size = float(data["image"].shape[-1])
    cam = translation_to_weak_perspective(data["transl_cam"], data["K"][:, 0, 0], size)
    model.set_mean(data["global_orient_cam"], data["body_pose"], data["shape"], cam)


def hmr_resume_key(model: HMR, data: dict[str, torch.Tensor] | ShardStream, cfg: HMRTraining,
                   inputs: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The fingerprint a saved HMR state must match (see ``resume.resume_key``): HMR starts from
    seeded fresh weights (seed and config are in the key), so its content is the training data:
    ``inputs`` (the entry point passes its spec fingerprint, shard indexes included) or, without
    them, the training tensors or the stream's shard hashes."""
    if isinstance(data, ShardStream):
        return resume_key(asdict(cfg), model.config_dict(), inputs or {"data": data.fingerprint()}, {},
                          num_samples=data.num_samples)  # fmt: skip
    return resume_key(asdict(cfg), model.config_dict(), inputs, data, num_samples=len(data["image"]))


def train_hmr(
    model: HMR,
    body: Any,
    data: dict[str, torch.Tensor] | ShardStream,
    cfg: HMRTraining,
    tracker: Tracker | None = None,
    log: Callable[[str], None] | None = None,
    resume_dir: str | Path | None = None,
    checkpoint_every: int = 100,
    after_step: Callable[[int], None] | None = None,
    rank: int = 0,
    wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    inputs: dict[str, Any] | None = None,
    mean: ParameterMean | None = None,
) -> dict[str, float]:
    """Trains ``model`` in place, on the device its weights are on (its mean parameters are set
    first, from ``mean`` or from the data).

    ``data`` is a stream of batches (``hmr.data.training_stream``: shards read by loader workers,
    each rank its own) or, for small sets and tests, a batch in memory, streamed the same way.
    Data-parallel runs (torchrun) pass their ``rank`` and a ``wrap`` (DistributedDataParallel):
    all ranks resume from the same state and only rank 0 writes it, so the effective batch is
    ranks x ``batch_size``. ``inputs`` (content fingerprints of the data and of any upstream
    weights) key the resume state; without them the data themselves are hashed."""
    tracker = tracker or NullTracker()
    say = log or (lambda m: None)
    torch.manual_seed(cfg.seed)
    if isinstance(data, dict):
        fingerprint = hmr_resume_key(model, data, cfg, inputs) if resume_dir else {}
        mean = mean or training_mean_of(data)
        data = memory_stream(data, cfg.batch_size, cfg.seed, rank)
    else:
        fingerprint = hmr_resume_key(model, data, cfg, inputs) if resume_dir else {}
    if mean is None:
        raise ValueError("train_hmr on a stream needs its mean (hmr.data.training_mean)")
    mean.apply(model)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = warmup_cosine(opt, cfg.steps, min(100, cfg.steps // 10 + 1))
    rng = torch.Generator().manual_seed(cfg.seed + rank)
    start = resume_step(resume_dir, {"model": model}, opt, rng, fingerprint)
    if start and rank:
        rng.manual_seed(cfg.seed + rank + start)  # rank 0's saved stream is not this rank's
    net = wrap(model) if wrap else model
    fast_forward(sched, start, say, "HMR", cfg.steps, resume_dir)
    report = LossReport(cfg.steps, cfg.log_every, tracker, say, {"joints_3d": "3D", "keypoints_2d": "2D"})
    model.train()
    batches = data.batches(start)
    for step in tqdm(range(start, cfg.steps), desc="hmr", leave=False, disable=None):
        batch = as_float(next(batches), device)
        if cfg.flip > 0:
            batch = flip_batch(batch, (torch.rand(len(batch["image"]), generator=rng) < cfg.flip).to(device))
        losses = hmr_losses(body, net(batch["image"]), batch, cfg.weights)
        optimiser_step(losses["total"], model.parameters(), opt, sched)
        report.update(step + 1, losses, sched.get_last_lr()[0])
        if resume_dir and rank == 0 and (step + 1) % checkpoint_every == 0 and step + 1 < cfg.steps:
            save_state(resume_dir, step + 1, {"model": model}, opt, rng, fingerprint)
        if after_step:
            after_step(step + 1)
    if resume_dir and rank == 0:
        clear_state(resume_dir)
    model.eval()
    seconds, done = report.seconds, cfg.steps - start
    return {"final_loss": report.final, "seconds": seconds, "steps_run": done,
            "samples_per_second": done * cfg.batch_size / max(seconds, 1e-9)}  # fmt: skip


@torch.no_grad()
def _mesh(body: Any, params: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    out = body.forward(params, validate=False)
    return out.vertices.numpy(), out.skeleton.numpy()


Predictor = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def mean_predictor(model: HMR) -> Predictor:
    """The mean-parameter baseline: every image gets the mean the model was initialised with."""
    rot = rot6d_to_matrix(model.mean_pose)
    aa = matrix_to_axis_angle(rot)

    def predict(images: torch.Tensor) -> dict[str, torch.Tensor]:
        n = len(images)
        return {"global_orient": aa[0].expand(n, 3), "body_pose": aa[1:].expand(n, *aa[1:].shape),
                "shape": model.mean_shape.expand(n, -1)}  # fmt: skip

    return predict


@torch.no_grad()
def evaluate_hmr(predict: Predictor, body: Any, data: EvalSet, batch: int = 64) -> dict[str, float]:
    """MPJPE and PA-MPJPE on the 22 skeleton joints (pelvis-rooted) and PVE on the mesh, in mm, on
    a loaded set or a ``FolderSplit`` (a shard at a time). The camera does not enter these
    root-aligned metrics."""
    return evaluate_models({"model": predict}, body, data, batch)["model"]


@torch.no_grad()
def evaluate_models(predictors: dict[str, Predictor], body: Any, data: EvalSet,
                    batch: int = 64) -> dict[str, dict[str, float]]:  # fmt: skip
    """``evaluate_hmr`` of several models on one set, which is read once (each batch is scored by
    every model before the next is decoded): a benchmark scores many checkpoints on a test split
    that streams from its shards."""
    errs = {name: {"mpjpe": [], "pa_mpjpe": [], "pve": []} for name in predictors}
    for chunk in set_chunks(data):
        for start in range(0, len(chunk["image"]), batch):
            b = slice_chunk(chunk, start, start + batch)
            gt_v, gt_j = _mesh(body, {"global_orient": b["global_orient_cam"], "body_pose": b["body_pose"],
                                      "shape": b["shape"]})  # fmt: skip
            for name, predict in predictors.items():
                pred = predict(b["image"])
                pv, pj = _mesh(body, {k: pred[k] for k in ("global_orient", "body_pose", "shape")})
                errs[name]["mpjpe"].append(mpjpe(pj, gt_j))
                errs[name]["pa_mpjpe"].append(pa_mpjpe(pj, gt_j))
                errs[name]["pve"].append(pve(pv, gt_v, pj[:, 0], gt_j[:, 0]))
    return {name: {k: float(np.concatenate(v).mean() * 1000.0) for k, v in e.items()} for name, e in errs.items()}


@torch.no_grad()
def predicted_keypoints(model: HMR, body: Any, data: dict[str, torch.Tensor]) -> np.ndarray:
    """COCO-17 keypoints [N, 17, 3] (u, v, 2) of the model's prediction projected with its own camera:
    what the sample overlays draw over the image."""
    from dreamer_core.hmr.camera import project, weak_perspective_to_translation

    pred = model(data["image"])
    t = weak_perspective_to_translation(pred["cam"], data["K"][:, 0, 0], float(data["image"].shape[-1]))
    joints = body.forward({k: pred[k] for k in ("global_orient", "body_pose", "shape")}, validate=False).joints
    uv = project(joints[:, :17] + t[:, None], data["K"])
    return torch.cat([uv, torch.full_like(uv[..., :1], 2.0)], -1).cpu().numpy()
