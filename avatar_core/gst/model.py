"""GST: the HMR regressor plus Gaussian query tokens, one 3D Gaussian per (chosen) body vertex.

The HMR backbone (optionally frozen) turns the image into tokens; its decoder now decodes the
body-parameter token together with one query token per chunk of vertices. The body token may not
attend to the Gaussian tokens, so an untrained GST predicts exactly its HMR checkpoint's body.
One linear head per attribute maps a chunk token to its vertices' offsets, log scales,
quaternions, opacity logits and SH colours, initialised small: offsets ~0, scales at the vertex
spacing, identity rotations, low opacity, grey.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from dreamer_core.hmr.model import HMR


@dataclass(frozen=True)
class GSTConfig:
    num_vertices: int = 2048  # Gaussians (a farthest-point subset of the body's vertices; all of them in full)
    chunk: int = 64  # vertices per Gaussian query token
    sh_degree: int = 0
    freeze_backbone: bool = False
    init_scale: float = 0.01  # metres: about the spacing of the chosen vertices
    init_opacity: float = 0.1

    def __post_init__(self) -> None:
        if self.num_vertices < 1 or self.chunk < 1 or not 0 <= self.sh_degree <= 3:
            raise ValueError(f"invalid GST config {self}: num_vertices, chunk >= 1, sh_degree in 0..3")
        if not (0.0 < self.init_opacity < 1.0 and self.init_scale > 0):
            raise ValueError(f"invalid GST config {self}: init_opacity in (0, 1), init_scale > 0")


ATTRIBUTES = ("offset", "log_scale", "quat", "opacity_logit", "sh")


class GST(nn.Module):
    def __init__(self, hmr: HMR, cfg: GSTConfig) -> None:
        super().__init__()
        self.hmr, self.cfg = hmr, cfg
        dim = hmr.cfg.dim
        self.tokens = math.ceil(cfg.num_vertices / cfg.chunk)
        self.query = nn.Parameter(torch.randn(1, self.tokens, dim) * 0.02)
        k = (cfg.sh_degree + 1) ** 2
        sizes = {"offset": 3, "log_scale": 3, "quat": 4, "opacity_logit": 1, "sh": 3 * k}
        self.sizes = sizes
        self.heads = nn.ModuleDict({name: nn.Linear(dim, cfg.chunk * n) for name, n in sizes.items()})
        self.norm = nn.LayerNorm(dim)
        with torch.no_grad():
            for head in self.heads.values():
                head.weight.mul_(1e-3)
                head.bias.zero_()
            self.heads["log_scale"].bias.fill_(math.log(cfg.init_scale))
            self.heads["quat"].bias.view(cfg.chunk, 4)[:, 0] = 1.0
            self.heads["opacity_logit"].bias.fill_(math.log(cfg.init_opacity / (1 - cfg.init_opacity)))
        # The body token sees itself only: GST's body starts as HMR's.
        mask = torch.zeros(1 + self.tokens, 1 + self.tokens, dtype=torch.bool)
        mask[0, 1:] = True
        self.register_buffer("attention_mask", mask, persistent=False)
        if cfg.freeze_backbone:
            for p in self.hmr.backbone.parameters():
                p.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Body parameters (as HMR's forward) plus per-vertex raw Gaussian attributes [B, V, ...]."""
        b = len(images)
        tokens = self.hmr.image_tokens(images)
        queries = torch.cat([self.hmr.query.expand(b, -1, -1), self.query.expand(b, -1, -1)], 1)
        out = self.hmr.decoder(queries, tokens, tgt_mask=self.attention_mask)
        result = self.hmr.body_params(out[:, 0])
        g = self.norm(out[:, 1:])
        v = self.cfg.num_vertices
        for name, head in self.heads.items():
            result[name] = head(g).reshape(b, self.tokens * self.cfg.chunk, self.sizes[name])[:, :v]
        result["opacity_logit"] = result["opacity_logit"][..., 0]
        result["sh"] = result["sh"].reshape(b, v, -1, 3)
        return result

    def config_dict(self) -> dict[str, Any]:
        return {"class": "GST", "gst": asdict(self.cfg), "hmr": asdict(self.hmr.cfg)}


def save_gst(folder: Any, model: GST, vertex_ids: torch.Tensor, extra: dict[str, Any] | None = None) -> None:
    """Weights (safetensors, with the chosen vertex ids) + config.json (GST and HMR configs)."""
    from dreamer_core.checkpoints import save_checkpoint

    state = {**model.state_dict(), "vertex_ids": vertex_ids.long()}
    save_checkpoint(folder, "model", state, {**model.config_dict(), **(extra or {})})


def load_gst(folder: Any) -> tuple[GST, torch.Tensor, dict[str, Any]]:
    """(model in eval mode, vertex ids, the config's extra fields)."""
    from dreamer_core.checkpoints import load_checkpoint
    from dreamer_core.hmr.model import HMRConfig

    cfg, state = load_checkpoint(folder, "model", "GST", "gst_checkpoint")
    model = GST(HMR(HMRConfig(**cfg.pop("hmr"))), GSTConfig(**cfg.pop("gst")))
    vertex_ids = state.pop("vertex_ids")
    model.load_state_dict(state)
    return model.eval(), vertex_ids, cfg
