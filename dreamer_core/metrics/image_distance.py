"""FID and KID between two image sets, through ``torchmetrics`` with the FID Inception weights
read from a local file. Without the weights (or the optional package) the answer is a reason,
never a made-up number: ``tiny`` runs offline and ships no Inception weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def unavailable(weights: str) -> str | None:
    """Why FID / KID cannot be computed here, or None when they can (checked before any image is read)."""
    if not weights:
        return "unavailable: benchmark_scores.inception_weights is not set (path to pt_inception weights)"
    if not Path(weights).is_file():
        return f"unavailable: no Inception weights at {weights}"
    try:
        import torchmetrics.image.fid  # noqa: F401
    except ImportError as exc:
        return f"unavailable: torchmetrics[image] is not installed ({exc}); pip install 'torchmetrics[image]'"
    return None


def inception_distances(real: np.ndarray, fake: np.ndarray, weights: str,
                        batch: int = 64) -> tuple[dict[str, float] | None, str]:  # fmt: skip
    """({"fid", "kid_mean", "kid_std"} or None, a status line) for uint8 images [N, H, W, 3]."""
    reason = unavailable(weights)
    if reason:
        return None, reason
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=weights)
    kid = KernelInceptionDistance(feature=fid.inception, subset_size=min(len(real), len(fake), 100))
    for images, is_real in ((real, True), (fake, False)):
        for start in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch])).permute(0, 3, 1, 2)
            fid.update(x, real=is_real)
            kid.update(x, real=is_real)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std)}, (
        f"computed on {len(real)} rendered and {len(fake)} generated images"
    )
