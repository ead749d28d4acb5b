"""The Diffusion-DPO objective (Wallace et al., 2023).

Winner and loser are corrupted with the same noise at the same timestep; the loss rewards the
model for lowering its denoising error on the winner *more* than the frozen reference does,
relative to the loser:  L = -log sigmoid(-beta/2 * [(e_w - r_w) - (e_l - r_l)]).
The errors are each backend's own objective (epsilon, v, or flow velocity), so the same formula
is the epsilon-prediction variant for SD-style UNets and the flow-matching variant for FLUX.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def dpo_loss(
    model_w: torch.Tensor, model_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor, beta: float
) -> tuple[torch.Tensor, dict[str, float]]:
    inside = -0.5 * beta * ((model_w - ref_w) - (model_l - ref_l))
    loss = -F.logsigmoid(inside).mean()
    with torch.no_grad():
        stats = {
            "implicit_accuracy": float((inside > 0).float().mean()),
            "winner_gain": float((ref_w - model_w).mean()),  # reference error minus model error
            "loser_gain": float((ref_l - model_l).mean()),
        }
    return loss, stats
