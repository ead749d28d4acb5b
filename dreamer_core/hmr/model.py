"""The HMR2-style regressor: image -> tokens (a pluggable backbone) -> a transformer decoder whose
single body-parameter query token attends to them -> heads for per-joint rotations (6D), shape
and a weak-perspective camera, each predicted as an offset from the training set's mean.

Backbones: ``vit`` (HMR2's choice; ``full`` loads pretrained weights into it) and ``cnn`` (a small
ResNet-style net: measured here, a small ViT from scratch does not learn in CPU minutes while a
small CNN does, so ``tiny`` uses it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from dreamer_core.bodies.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from dreamer_core.hmr.rotations import matrix_to_rot6d, rot6d_to_matrix

NUM_JOINTS = 22  # root (global orientation) + 21 body joints of the shared pose convention


@dataclass(frozen=True)
class HMRConfig:
    image_size: int = 64
    backbone: str = "cnn"  # cnn | vit
    width: int = 32  # cnn: channels of the first stage (doubling per stage); vit: token width
    depth: int = 3  # cnn: stages (each halves the resolution); vit: encoder layers
    patch: int = 8  # vit: patch side
    dim: int = 128  # decoder token width
    decoder_layers: int = 2
    heads: int = 4
    num_shape: int = 10

    def __post_init__(self) -> None:
        if self.backbone not in ("cnn", "vit"):
            raise ValueError(f"hmr backbone must be cnn or vit, got {self.backbone!r}")
        if self.backbone == "vit" and self.image_size % self.patch:
            raise ValueError(f"hmr image_size {self.image_size} is not a multiple of patch {self.patch}")
        if self.dim % self.heads:
            raise ValueError(f"hmr dim {self.dim} is not a multiple of heads {self.heads}")


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.skip = (
            nn.Identity() if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class CNNBackbone(nn.Module):
    """ResNet-style stages; the last feature map becomes the decoder's tokens."""

    def __init__(self, cfg: HMRConfig) -> None:
        super().__init__()
        w = cfg.width
        layers: list[nn.Module] = [nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        for i in range(cfg.depth):
            cin, cout = w * 2 ** max(i - 1, 0), w * 2**i
            layers += [_Block(cin, cout, 2), _Block(cout, cout, 1)]
        self.net = nn.Sequential(*layers)
        self.out_channels = w * 2 ** (cfg.depth - 1)
        self.grid = cfg.image_size // 2**cfg.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(2).transpose(1, 2)  # [B, HW, C]


class ViTBackbone(nn.Module):
    """Patch embedding + transformer encoder (pre-norm), as in HMR2's ViT at a smaller size."""

    def __init__(self, cfg: HMRConfig) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, cfg.width, cfg.patch, cfg.patch)
        self.grid = cfg.image_size // cfg.patch
        self.pos = nn.Parameter(torch.zeros(1, self.grid**2, cfg.width))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(cfg.width, max(1, cfg.width // 32), 4 * cfg.width, 0.0,
                                           batch_first=True, norm_first=True)  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.out_channels = cfg.width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embed(x).flatten(2).transpose(1, 2) + self.pos)


class HMR(nn.Module):
    def __init__(self, cfg: HMRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = CNNBackbone(cfg) if cfg.backbone == "cnn" else ViTBackbone(cfg)
        self.proj = nn.Linear(self.backbone.out_channels, cfg.dim)
        self.pos = nn.Parameter(torch.zeros(1, self.backbone.grid**2, cfg.dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.query = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        layer = nn.TransformerDecoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, 0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.decoder_layers)
        self.norm = nn.LayerNorm(cfg.dim)
        self.pose_head = nn.Linear(cfg.dim, NUM_JOINTS * 6)
        self.shape_head = nn.Linear(cfg.dim, cfg.num_shape)
        self.cam_head = nn.Linear(cfg.dim, 3)
        for head in (self.pose_head, self.shape_head, self.cam_head):  # start at the mean parameters
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.register_buffer("mean_pose", matrix_to_rot6d(torch.eye(3).expand(NUM_JOINTS, 3, 3)).clone())
        self.register_buffer("mean_shape", torch.zeros(cfg.num_shape))
        self.register_buffer("mean_cam", torch.tensor([1.0, 0.0, 0.0]))

    @torch.no_grad()
    def set_mean(self, global_orient: torch.Tensor, body_pose: torch.Tensor, shape: torch.Tensor,
                 cam: torch.Tensor) -> None:  # fmt: skip
        """Mean parameters of the training set (axis-angle in, a chordal mean of rotations stored):
        the prediction before any training, and the mean-pose baseline of the benchmarks."""
        if shape.shape[-1] != self.cfg.num_shape:
            raise ValueError(
                f"the data has {shape.shape[-1]} shape parameters, the model num_shape={self.cfg.num_shape}: "
                "build HMRConfig with the body model's num_shape_params"
            )
        aa = torch.cat([global_orient[:, None], body_pose], dim=1)
        self.set_mean_values(axis_angle_to_matrix(aa.double()).mean(0), shape.mean(0), cam.mean(0))

    def set_mean_values(self, rotations: torch.Tensor, shape: torch.Tensor, cam: torch.Tensor) -> None:
        """The same from the means themselves (a streamed set sums them shard by shard):
        ``rotations`` [J, 3, 3] the arithmetic mean of the joints' rotation matrices, projected
        here onto the nearest rotations."""
        if shape.shape[-1] != self.cfg.num_shape:
            raise ValueError(f"the data has {shape.shape[-1]} shape parameters, the model {self.cfg.num_shape}")
        mats = rotations.double().cpu()
        u, _, vt = torch.linalg.svd(mats)
        fix = torch.ones(NUM_JOINTS, 3, dtype=mats.dtype)
        fix[:, 2] = torch.sign(torch.linalg.det(u @ vt))
        self.mean_pose.copy_(matrix_to_rot6d((u * fix[:, None]) @ vt).float())
        self.mean_shape.copy_(shape)
        self.mean_cam.copy_(cam)

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """[B, HW, dim]: what the query tokens attend to (GST adds its own queries to the same decoder).

        Images are made contiguous first: a channels-last view (what permuting HWC arrays and
        resizing gives) corrupted the heap in torch 2.13's CPU convolution backward."""
        return self.proj(self.backbone(images.contiguous())) + self.pos

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self.image_tokens(images)
        return self.body_params(self.decoder(self.query.expand(len(images), -1, -1), tokens)[:, 0])

    def body_params(self, token: torch.Tensor) -> dict[str, torch.Tensor]:
        """The decoded body-parameter token [B, dim] -> rotations, shape and camera (offsets from the mean)."""
        q = self.norm(token)
        rot6d = self.mean_pose + self.pose_head(q).view(-1, NUM_JOINTS, 6)
        rotmat = rot6d_to_matrix(rot6d)
        aa = matrix_to_axis_angle(rotmat)
        return {
            "rotmat": rotmat,
            "global_orient": aa[:, 0],
            "body_pose": aa[:, 1:],
            "shape": self.mean_shape + self.shape_head(q),
            "cam": self.mean_cam + self.cam_head(q),
        }

    def config_dict(self) -> dict[str, Any]:
        return {"class": "HMR", **asdict(self.cfg)}


def save_hmr(folder: Any, model: HMR, extra: dict[str, Any] | None = None) -> None:
    """Weights (safetensors) + config.json (the HMRConfig, plus whatever describes the run)."""
    from dreamer_core.checkpoints import save_checkpoint

    save_checkpoint(folder, "model", model.state_dict(), {**model.config_dict(), **(extra or {})})


def load_hmr(folder: Any, device: str = "cpu") -> tuple[HMR, dict[str, Any]]:
    """(model in eval mode, the config's extra fields); clear errors for missing or foreign files."""
    from dreamer_core.checkpoints import load_checkpoint

    cfg, state = load_checkpoint(folder, "model", "HMR", "hmr_checkpoints")
    fields = set(HMRConfig.__dataclass_fields__)
    model = HMR(HMRConfig(**{k: v for k, v in cfg.items() if k in fields}))
    model.load_state_dict(state)
    return model.to(device).eval(), {k: v for k, v in cfg.items() if k not in fields}
