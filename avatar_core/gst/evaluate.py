"""Novel-view scores of avatars on held-out subjects: PSNR and SSIM on the full image and within
the person's mask, for GST, the untrained GST and the posed body mesh in a flat mean colour; and
MPJPE of GST's body against the HMR checkpoint it started from.

Protocol: each held-out subject's view 0 is the input; every other view is a novel view. Targets
are the renders with the person over the flat background the avatars render on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from avatar_core.gst.assemble import Assembler, relative_viewmats
from avatar_core.gst.data import Views, on_background
from avatar_core.gst.model import GST
from avatar_core.gst.train import BACKGROUND, input_batch, render_targets
from dreamer_core.bodies.skeleton import SKELETON_SLICE
from dreamer_core.metrics.pose3d import mpjpe
from dreamer_core.render.cameras import Camera
from dreamer_core.render.raycast import downsample


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per image [N] PSNR (dB, peak 1) of [N, H, W, C] images; over ``mask`` [N, H, W, 1] pixels only."""
    err = (pred - target).pow(2)
    if mask is None:
        mse = err.flatten(1).mean(1)
    else:
        w = mask.expand_as(err)
        mse = (err * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-8)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


def ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per image [N] SSIM (Wang et al. 2004: 11 px Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
    peak 1, mean over channels) of [N, H, W, C] images; the SSIM map averaged within ``mask``."""
    x, y = pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    c = x.shape[1]
    g = torch.exp(-((torch.arange(11, dtype=x.dtype) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(c, 1, 11, 11).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, (5, 5, 5, 5), mode="reflect"), window, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    smap = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    smap = smap.mean(1)  # [N, H, W]
    if mask is None:
        return smap.flatten(1).mean(1)
    w = mask[..., 0]
    return (smap * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-8)


def _scores(rgb: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    rgb, target, mask = rgb.flatten(0, 1), target.flatten(0, 1), mask.flatten(0, 1)
    return {
        "psnr": float(psnr(rgb, target).mean()),
        "ssim": float(ssim(rgb, target).mean()),
        "psnr_mask": float(psnr(rgb, target, mask).mean()),
        "ssim_mask": float(ssim(rgb, target, mask).mean()),
    }


def novel_view_protocol(views: Views) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(subject [S], input view [S] (all 0), targets [S, V - 1])."""
    s, v = views["images"].shape[:2]
    return torch.arange(s), torch.zeros(s, dtype=torch.long), torch.arange(1, v).expand(s, v - 1)


def targets_of(views: Views, subject: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    images = views["images"][subject[:, None], targets].permute(0, 1, 3, 4, 2)
    masks = views["masks"][subject[:, None], targets].permute(0, 1, 3, 4, 2)
    return on_background(images, masks, BACKGROUND), masks


@torch.no_grad()
def score_gst(model: GST, assembler: Assembler, views: Views) -> dict[str, float]:
    subject, view, targets = novel_view_protocol(views)
    rgb, _, _ = render_targets(model, assembler, views, subject, view, targets)
    target, mask = targets_of(views, subject, targets)
    return _scores(rgb, target, mask)


def mean_person_colour(views: Views) -> torch.Tensor:
    """The training subjects' mean foreground colour [3] (the flat-mesh baseline's paint)."""
    w = views["masks"]
    return (views["images"] * w).sum((0, 1, 3, 4)) / w.sum().clamp_min(1e-8)


@torch.no_grad()
def score_flat_mesh(hmr: Any, body: Any, renderer: Any, views: Views, colour: torch.Tensor,
                    supersample: int = 2) -> dict[str, float]:  # fmt: skip
    """The mesh of the HMR checkpoint's body (what GST starts from), placed by its camera, ray cast
    into every novel view and painted ``colour``: the silhouette-only baseline GST must beat."""
    subject, view, targets = novel_view_protocol(views)
    size = views["images"].shape[-1]
    pred = hmr(input_batch(views, subject, view, hmr.cfg.image_size))
    assembler = Assembler(body, torch.arange(body.num_vertices))
    verts = assembler.vertices(pred, views["K"][subject, view], float(size)).numpy().astype(np.float64)
    vm = relative_viewmats(views["viewmats"][subject, view], views["viewmats"][subject[:, None], targets]).numpy()
    Ks = views["K"][subject[:, None], targets].numpy().astype(np.float64)
    cover = np.zeros((*targets.shape, size, size, 1), dtype=np.float32)
    for i in range(len(subject)):
        for j in range(targets.shape[1]):
            cam = Camera(Ks[i, j], vm[i, j, :3, :3].astype(np.float64), vm[i, j, :3, 3].astype(np.float64), size, size)
            hits = renderer.cast(verts[i], cam, supersample)
            cover[i, j, ..., 0] = downsample(hits.mask.astype(np.float32)[..., None], supersample)[..., 0]
    cover_t = torch.from_numpy(cover)
    rgb = colour * cover_t + BACKGROUND * (1 - cover_t)
    target, mask = targets_of(views, subject, targets)
    return _scores(rgb, target, mask)


@torch.no_grad()
def body_mpjpe(predict: Any, body: Any, views: Views) -> float:
    """Root-aligned MPJPE (mm) on the 22 skeleton joints of each held-out subject's input view."""
    subject, view, _ = novel_view_protocol(views)
    images = input_batch(views, subject, view, predict_image_size(predict))
    pred = predict(images)
    joints = body.forward({k: pred[k] for k in ("global_orient", "body_pose", "shape")}, validate=False).skeleton
    truth = views["joints_3d"][subject, view][:, SKELETON_SLICE]
    return float(mpjpe(joints.numpy(), truth.numpy()).mean() * 1000.0)


def predict_image_size(model: Any) -> int:
    return model.hmr.cfg.image_size if isinstance(model, GST) else model.cfg.image_size
