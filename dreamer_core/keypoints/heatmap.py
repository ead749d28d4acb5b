"""The tiny 2D keypoint detector: a small U-Net-like CNN with a stride-2 stem, 17 heatmaps and a
person mask at half resolution, decoded by soft-argmax (differentiable, sub-pixel).

Measured when it was chosen: a 0.6 M-parameter model of this shape reaches held-out PCK@0.1 ~0.7 in minutes on two
CPU cores, while a stride-1 2.3 M version was ~5 s/step. It is the `tiny` profile's detector and
OKS judge; `full` uses a pretrained ViTPose instead behind the same ``predict`` interface.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dreamer_core.checkpoints import load_checkpoint, save_checkpoint
from dreamer_core.images import COCO_KEYPOINTS


@dataclass(frozen=True)
class HeatmapNetConfig:
    width: int = 32
    depth: int = 2  # residual blocks per stage
    num_keypoints: int = COCO_KEYPOINTS
    temperature: float = 1.0  # soft-argmax sharpness, learned scale on top


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.GroupNorm(8, c), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.GroupNorm(8, c),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.body(x))


class HeatmapNet(nn.Module):
    def __init__(self, cfg: HeatmapNetConfig = HeatmapNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, stride=2, padding=1), nn.GroupNorm(8, w), nn.SiLU())
        self.enc1 = nn.Sequential(*[_Block(w) for _ in range(cfg.depth)])
        self.down = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU())
        self.enc2 = nn.Sequential(*[_Block(2 * w) for _ in range(cfg.depth)])
        self.down2 = nn.Sequential(nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU())
        self.mid = nn.Sequential(*[_Block(2 * w) for _ in range(cfg.depth)])
        self.up2 = nn.Conv2d(4 * w, 2 * w, 3, padding=1)
        self.up = nn.Conv2d(3 * w, w, 3, padding=1)
        self.dec = nn.Sequential(*[_Block(w) for _ in range(cfg.depth)])
        self.head = nn.Conv2d(w, cfg.num_keypoints + 1, 1)
        self.log_beta = nn.Parameter(torch.tensor(float(np.log(cfg.temperature))))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 3, H, W] in [0, 1] -> (heatmap logits [B, K, H/2, W/2], mask logits [B, 1, H/2, W/2])."""
        x1 = self.enc1(self.stem(images * 2 - 1))
        x2 = self.enc2(self.down(x1))
        x3 = self.mid(self.down2(x2))
        y = F.silu(self.up2(torch.cat([F.interpolate(x3, size=x2.shape[-2:], mode="nearest"), x2], 1)))
        y = F.silu(self.up(torch.cat([F.interpolate(y, size=x1.shape[-2:], mode="nearest"), x1], 1)))
        out = self.head(self.dec(y))
        return out[:, :-1], out[:, -1:]

    def decode(self, heatmaps: torch.Tensor, image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft-argmax -> (keypoints [B, K, 2] in input pixels, confidence [B, K] in [0, 1])."""
        b, k, h, w = heatmaps.shape
        prob = F.softmax(heatmaps.reshape(b, k, -1) * self.log_beta.exp(), dim=-1).reshape(b, k, h, w)
        ys = (torch.arange(h, dtype=prob.dtype, device=prob.device) + 0.5) * (image_size[0] / h)
        xs = (torch.arange(w, dtype=prob.dtype, device=prob.device) + 0.5) * (image_size[1] / w)
        u = (prob.sum(2) * xs).sum(-1)
        v = (prob.sum(3) * ys).sum(-1)
        conf = torch.sigmoid(heatmaps.reshape(b, k, -1).max(-1).values)
        return torch.stack([u, v], -1), conf

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The detector interface: keypoints [B, 17, 2] (pixels), scores [B, 17], person mask
        probability [B, H/2, W/2] (person boxes and counts derive from it), on the CPU whatever
        device the weights are on."""
        self.eval()
        heat, mask = self(images.to(self.stem[0].weight.device))  # scored where the weights are
        kp, conf = self.decode(heat, images.shape[-2:])
        return {"keypoints": kp.cpu(), "scores": conf.cpu(), "mask": torch.sigmoid(mask[:, 0]).cpu()}

    def save(self, folder: str | Path) -> None:
        save_checkpoint(folder, "model", self.state_dict(), {"class": "HeatmapNet", **asdict(self.cfg)})

    @classmethod
    def load(cls, folder: str | Path) -> HeatmapNet:
        cfg, state = load_checkpoint(folder, "model", "HeatmapNet", "pose_detector")
        model = cls(HeatmapNetConfig(**cfg))
        model.load_state_dict(state)
        return model.eval()
