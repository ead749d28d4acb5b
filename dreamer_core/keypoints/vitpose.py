"""The `full` profile's detector: a pretrained ViTPose (``transformers``) from a local path or a
hub id, behind the same ``predict`` interface as the tiny ``HeatmapNet``.

ViTPose is top-down: it expects one person per 256 x 192 (h x w) crop, normalised with ImageNet
statistics. Our samples are already square crops around one body, so each is scaled to the crop
width and padded top and bottom (no distortion); heatmap peaks are mapped back to input pixels.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F

from dreamer_core.errors import PipelineInputError

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


class VitPoseDetector:
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        h, w = model.config.backbone_config.image_size
        self.input_hw = (int(h), int(w))
        if model.config.num_labels < 17:
            raise PipelineInputError(f"ViTPose model predicts {model.config.num_labels} keypoints; COCO-17 needed")

    @classmethod
    def from_pretrained(cls, name_or_path: str, offline: bool = True) -> VitPoseDetector:
        """Load weights from a folder or hub id; with ``offline`` a hub id must already be cached."""
        from transformers import VitPoseForPoseEstimation

        local = Path(name_or_path).expanduser()
        try:
            model = VitPoseForPoseEstimation.from_pretrained(str(local) if local.exists() else name_or_path,
                                                             local_files_only=offline)  # fmt: skip
        except OSError as exc:
            raise PipelineInputError(
                f"pose_detector.weights: cannot load ViTPose from {name_or_path!r} ({exc}). Give a local folder "
                "saved with save_pretrained, or a hub id that is cached (offline) or reachable."
            ) from exc
        return cls(model)

    def to(self, device: torch.device | str) -> VitPoseDetector:
        self.model.to(device)
        return self

    def _prepare(self, images: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        b, _, h, w = images.shape
        th, tw = self.input_hw
        scale = min(tw / w, th / h)
        nh, nw = round(h * scale), round(w * scale)
        x = F.interpolate(images, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        pad_y, pad_x = (th - nh) / 2, (tw - nw) / 2
        x = F.pad(x, (int(pad_x), tw - nw - int(pad_x), int(pad_y), th - nh - int(pad_y)))
        return (x - IMAGENET_MEAN) / IMAGENET_STD, scale, (int(pad_x), int(pad_y))

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B, 3, H, W] in [0, 1] -> keypoints [B, 17, 2] (input pixels), scores [B, 17]; the
        network runs where its weights are, the outputs are CPU tensors."""
        x, scale, (px, py) = self._prepare(images)
        device = next(self.model.parameters()).device
        index = torch.zeros(len(x), dtype=torch.long, device=device)
        heat = self.model(pixel_values=x.to(device), dataset_index=index).heatmaps[:, :17].cpu()
        b, k, hh, ww = heat.shape
        flat = heat.reshape(b, k, -1)
        score, idx = flat.max(-1)
        th, tw = self.input_hw
        u = ((idx % ww).float() + 0.5) * (tw / ww)
        v = (torch.div(idx, ww, rounding_mode="floor").float() + 0.5) * (th / hh)
        kp = torch.stack([(u - px) / scale, (v - py) / scale], -1)
        # A peak in the padding means "not in this crop": keep it on the image border.
        kp[..., 0] = kp[..., 0].clamp(0, images.shape[-1])
        kp[..., 1] = kp[..., 1].clamp(0, images.shape[-2])
        return {"keypoints": kp, "scores": score}
