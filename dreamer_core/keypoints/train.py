"""Training and evaluation of the tiny keypoint detector on rendered shards.

Loss: L1 on soft-argmax coordinates (normalised by image size) for labelled keypoints, a
cross-entropy between each keypoint's spatial softmax and a small Gaussian at its label (keeps
heatmaps peaked, so confidences mean something), and BCE on the person mask.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from dreamer_core.datasets.stream import ShardStream, to_device
from dreamer_core.datasets.torch_dataset import ShardSplit
from dreamer_core.images import COCO_KEYPOINTS
from dreamer_core.keypoints.heatmap import HeatmapNet, HeatmapNetConfig
from dreamer_core.keypoints.metrics import mask_area, oks, pck
from dreamer_core.tracking import NullTracker, Tracker
from dreamer_core.training import optimiser_step, warmup_cosine


@dataclass(frozen=True)
class DetectorTraining:
    steps: int
    batch_size: int
    lr: float
    width: int
    seed: int
    depth: int = 2
    log_every: int = 50


def stack_split(dataset) -> dict[str, torch.Tensor]:
    """Decoded samples -> tensors: images [N,3,H,W], masks [N,1,H,W], keypoints [N,17,3], bbox [N,4]."""
    items = [dataset[i] for i in range(len(dataset))]
    return {
        "image": torch.stack([x["image"] for x in items]),
        "mask": torch.stack([x["mask"] for x in items]),
        "keypoints": torch.stack([x["keypoints_2d"][:COCO_KEYPOINTS] for x in items]),
        "bbox": torch.stack([x["bbox"] for x in items]),
    }


def detector_loss(model: HeatmapNet, images: torch.Tensor, masks: torch.Tensor, kps: torch.Tensor) -> torch.Tensor:
    heat, mask_logit = model(images)
    h, w = images.shape[-2:]
    pred, _ = model.decode(heat, (h, w))
    labelled = (kps[..., 2] > 0).float()
    scale = torch.tensor([w, h], dtype=images.dtype, device=images.device)
    coord = ((pred - kps[..., :2]).abs() / scale).sum(-1)
    coord_loss = (coord * labelled).sum() / labelled.sum().clamp_min(1)
    b, k, hh, ww = heat.shape
    ys = (torch.arange(hh, device=images.device) + 0.5) * (h / hh)
    xs = (torch.arange(ww, device=images.device) + 0.5) * (w / ww)
    sigma = 1.5 * h / hh
    d2 = (xs[None, None, None, :] - kps[..., 0, None, None]) ** 2 + (
        ys[None, None, :, None] - kps[..., 1, None, None]
    ) ** 2
    target = torch.exp(-d2 / (2 * sigma**2)).reshape(b, k, -1)
    target = target / target.sum(-1, keepdim=True).clamp_min(1e-8)
    logp = F.log_softmax(heat.reshape(b, k, -1) * model.log_beta.exp(), -1)
    ce = -(target * logp).sum(-1)
    ce_loss = (ce * labelled).sum() / labelled.sum().clamp_min(1)
    mask_t = F.interpolate(masks, size=(hh, ww), mode="area")
    mask_loss = F.binary_cross_entropy_with_logits(mask_logit, mask_t)
    return coord_loss * 10 + 0.1 * ce_loss + mask_loss


HeldOut = dict[str, torch.Tensor] | ShardSplit  # a split in memory (``stack_split``) or read a shard at a time


def _chunks(data: HeldOut) -> Iterator[dict[str, torch.Tensor]]:
    if isinstance(data, ShardSplit):
        yield from (to_device(c) for c in data.chunks())
    else:
        yield data


def _labels(chunk: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"keypoints": chunk["keypoints"], "bbox": chunk["bbox"], "area": torch.from_numpy(mask_area(chunk["mask"]))}


def heldout_labels(data: HeldOut) -> dict[str, torch.Tensor]:
    """What scoring needs of a held-out split (keypoints, boxes, person-mask areas): small."""
    parts = [_labels(c) for c in _chunks(data)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@torch.no_grad()
def evaluate(model: HeatmapNet, data: HeldOut, batch: int = 128) -> dict[str, float]:
    """Held-out PCK / OKS of ``model``; a ``ShardSplit`` is predicted a shard at a time."""
    preds, parts = [], []
    for chunk in _chunks(data):
        for start in range(0, len(chunk["image"]), batch):
            preds.append(model.predict(chunk["image"][start : start + batch])["keypoints"])
        parts.append(_labels(chunk))
    labels = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return score(torch.cat(preds).numpy(), labels)


def score(pred: np.ndarray, data: dict[str, torch.Tensor]) -> dict[str, float]:
    """PCK@0.1 (of the box's longer side) and COCO OKS (area: the label's person-mask pixel count,
    ``data["area"]`` or counted on ``data["mask"]``) of keypoints [N, 17, 2]."""
    kp = data["keypoints"].numpy()
    bbox = data["bbox"].numpy()
    vis = kp[..., 2]
    area = data["area"].numpy() if "area" in data else mask_area(data["mask"])
    return {
        "pck": pck(pred, kp[..., :2], vis, bbox, 0.1),
        "oks": float(np.nanmean(oks(pred, kp[..., :2], vis, area))),
    }


def mean_pose_baseline(train: dict[str, torch.Tensor], test: dict[str, torch.Tensor]) -> dict[str, float]:
    """Predict the training set's mean keypoints (relative to the box) in every test box (``test``:
    a ``stack_split`` dict or ``heldout_labels``)."""

    def rel(data):
        kp, b = data["keypoints"][..., :2].numpy(), data["bbox"].numpy()
        size = np.maximum(b[:, 2:] - b[:, :2], 1.0)
        return (kp - b[:, None, :2]) / size[:, None], b, size

    r, _, _ = rel(train)
    mean = r.mean(0)
    _, b, size = rel(test)
    return score(b[:, None, :2] + mean[None] * size[:, None], test)


DETECTOR_FIELDS = ("image", "mask", "keypoints")


def _memory_batches(train: dict[str, torch.Tensor], batch_size: int, gen: torch.Generator) -> Iterator[dict]:
    """Batches drawn with replacement from a set held in memory (small sets, tests)."""
    n = len(train["image"])
    while True:
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        yield {k: train[k][idx] for k in DETECTOR_FIELDS}


def train_detector(
    train: dict[str, torch.Tensor] | ShardStream,
    test: HeldOut,
    cfg: DetectorTraining,
    tracker: Tracker | None = None,
    log: Callable[[str], None] | None = None,
    device: torch.device | str = "cpu",
) -> tuple[HeatmapNet, dict[str, float]]:
    """A fresh detector trained on ``device``; returned on the CPU with its held-out PCK / OKS.

    ``train`` is a ``ShardStream`` of ``DETECTOR_FIELDS`` (``torch_dataset.sample_stream``: shards
    decoded as they are needed, images uint8 until the batch is on the device; what the asset
    uses) or a set in memory (batches drawn with replacement)."""
    tracker = tracker or NullTracker()
    say = log or (lambda m: None)
    torch.manual_seed(cfg.seed)
    model = HeatmapNet(HeatmapNetConfig(width=cfg.width, depth=cfg.depth)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = warmup_cosine(opt, cfg.steps, 50, floor=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    if isinstance(train, ShardStream):
        if train.batch_size != cfg.batch_size:
            raise ValueError(f"the stream makes batches of {train.batch_size}, the training wants {cfg.batch_size}")
        batches = train.batches()
    else:
        batches = _memory_batches(train, cfg.batch_size, gen)
    t0 = time.perf_counter()
    model.train()
    for step in tqdm(range(cfg.steps), desc="pose detector", leave=False, disable=None):
        batch = to_device(next(batches), device)
        images, masks, kps = (batch[k] for k in DETECTOR_FIELDS)
        if torch.rand((), generator=gen) < 0.5:  # horizontal flip, swapping left and right labels
            images, masks, kps = flip(images, masks, kps)
        loss = detector_loss(model, images, masks, kps)
        optimiser_step(loss, model.parameters(), opt, sched, clip=None)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            tracker.log_metrics({"loss": loss.item(), "lr": sched.get_last_lr()[0]}, step=step + 1)
        if (step + 1) % max(cfg.steps // 5, 1) == 0:
            m = evaluate(model, test)
            model.train()
            tracker.log_metrics({"heldout_pck": m["pck"], "heldout_oks": m["oks"]}, step=step + 1)
            say(f"step {step + 1}/{cfg.steps}: loss {loss.item():.4f}, held-out PCK {m['pck']:.3f}, OKS {m['oks']:.3f}")
    metrics = evaluate(model, test)
    metrics["seconds"] = time.perf_counter() - t0
    return model.cpu().eval(), metrics


# COCO-17 left/right pairs for flipping.
FLIP_PERM = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def flip(images: torch.Tensor, masks: torch.Tensor, kps: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w = images.shape[-1]
    kps = kps[:, FLIP_PERM].clone()
    kps[..., 0] = w - kps[..., 0]
    return images.flip(-1), masks.flip(-1), kps
