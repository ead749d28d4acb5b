"""Novel-view scores of avatars on held-out subjects: PSNR and SSIM within the person's mask (the
headline numbers) and on the full image (secondary), for GST, the untrained GST and the posed body
mesh in a flat mean colour; and MPJPE of GST's body against the HMR checkpoint it started from.

Protocol: each held-out subject's view 0 is the input; every other view is a novel view. Targets
are the renders with the person over the flat background the avatars render on. The person covers
a small part of a view, so full-image numbers mostly score the flat background (which every model
gets right by rendering nothing there); the masked numbers score the person.

The image metrics are computed the way the field computes them (scikit-image's
``structural_similarity`` with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1``, torchmetrics' ``structural_similarity_index_measure`` defaults, Wang et al.'s
reference code): both images clamped to [0, 1] first (a render may overshoot; a saved image
cannot), peak 1, and SSIM only where its window fits inside the image.
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

SSIM_WINDOW = 11  # Gaussian window side (px): 2 * int(3.5 * sigma + 0.5) + 1, scikit-image's and torchmetrics'
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_BORDER = SSIM_WINDOW // 2  # the strip where the window does not fit: cropped from the SSIM map


def _unit(images: torch.Tensor) -> torch.Tensor:
    """Clamped to [0, 1] in float64: the range a saved image holds and the peak (1) the metrics
    assume; float64 because SSIM's variances are differences of near-equal window means."""
    return images.double().clamp(0.0, 1.0)


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per image [N] weighted mean of [N, ...] values; NaN where the weights sum to 0, so that an
    empty mask reads as undefined rather than as a perfect (or zero) score."""
    total = weights.flatten(1).sum(1)
    mean = (values * weights).flatten(1).sum(1) / total.clamp_min(1e-12)
    return torch.where(total > 0, mean, torch.full_like(mean, float("nan")))


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per image [N] PSNR (dB, peak 1, both images clamped to [0, 1]) of [N, H, W, C] images.

    With ``mask`` [N, H, W, 1] (the target's person mask, soft values weighting pixels): masked
    PSNR, the MSE taken over the pixels inside the mask only (all channels), as human-avatar papers
    report it; NaN where the mask is empty. The target's mask, not its union with the render's
    alpha, so every model is scored on the same pixels; what a render paints outside the person
    only the full-image number sees. Identical images cap at 100 dB."""
    err = (_unit(pred) - _unit(target)).pow(2)
    mse = err.flatten(1).mean(1) if mask is None else _masked_mean(err, mask.double().expand_as(err))
    return (-10.0 * torch.log10(mse.clamp_min(1e-10))).to(pred.dtype)


def ssim_map(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM map [N, H - 10, W - 10] (float64, mean over channels) of [N, H, W, C] images clamped to
    [0, 1]: Wang et al. 2004 with an 11 px Gaussian window (sigma 1.5), K1 0.01, K2 0.03, peak 1,
    population (co)variances. Only the 'valid' positions, where the whole window lies inside the
    image: padding the border (reflect or zeros) would compare made-up pixels, and at 64 px the
    5 px strip is 29% of the map. Entry [i, j] is centred on pixel [i + 5, j + 5]."""
    h, w = pred.shape[1:3]
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} px a side, got {h}x{w}")
    x, y = _unit(pred).permute(0, 3, 1, 2), _unit(target).permute(0, 3, 1, 2)
    c = x.shape[1]
    g = torch.exp(-((torch.arange(SSIM_WINDOW, dtype=x.dtype) - SSIM_BORDER) ** 2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(c, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=c)  # no padding: valid positions only

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    smap = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return smap.mean(1)


def ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per image [N] SSIM of [N, H, W, C] images: the mean of ``ssim_map`` (what scikit-image and
    torchmetrics return for the same settings).

    With ``mask`` [N, H, W, 1] (the target's person mask): masked SSIM, the SSIM map averaged over
    the mask's pixels (soft values weighting them) among the valid positions, i.e. over windows
    centred on the person. Each such window also sees the person's silhouette and its surroundings,
    so a wrong outline still costs. Chosen over SSIM of the mask's bounding-box crop (Neural Body's
    protocol) because at 64 px a crop that also drops its own 5 px border loses the head, hands and
    feet and may be narrower than the window. Mask pixels within 5 px of the image edge are not
    counted; NaN where no mask pixel is left."""
    smap = ssim_map(pred, target)
    if mask is None:
        return smap.flatten(1).mean(1).to(pred.dtype)
    b = SSIM_BORDER
    w = mask[:, b:-b, b:-b, 0].double()
    return _masked_mean(smap, w).to(pred.dtype)


def _scores(rgb: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Mean over views of masked (headline) and full-image PSNR / SSIM; a view whose mask is empty
    (masked metric undefined) is left out of the masked means."""
    rgb, target, mask = rgb.flatten(0, 1), target.flatten(0, 1), mask.flatten(0, 1)
    return {
        "psnr_mask": float(psnr(rgb, target, mask).nanmean()),
        "ssim_mask": float(ssim(rgb, target, mask).nanmean()),
        "psnr": float(psnr(rgb, target).mean()),
        "ssim": float(ssim(rgb, target).mean()),
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
