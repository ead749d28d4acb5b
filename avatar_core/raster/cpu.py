"""A differentiable, vectorised tile compositor for 3D Gaussians in plain PyTorch (any device).

gsplat rasterizes only on CUDA; its pure-PyTorch projection (``_fully_fused_projection``: 2D means,
conics, depths, radii) runs anywhere, but its tile intersection is a per-Gaussian Python loop. This
module bins Gaussians into tiles with tensor ops, sorts each tile front to back and alpha-composites
every pixel of a chunk of tiles at once, with gsplat's rules, so CPU training matches what the CUDA
path computes:

- pixel centres at (x + 0.5, y + 0.5); a Gaussian reaches the tiles its 3-sigma box touches;
- alpha = min(0.999, opacity * exp(-sigma)), skipped below 1/255 or when sigma < 0;
- front to back: a pixel stops at the Gaussian that would bring its transmittance to <= 1e-4.

Memory is chunked over tiles (``max_elements`` values of the [tiles, pixels, Gaussians] alpha
tensor at a time), so a large scene is slower, not out of memory.
"""

from __future__ import annotations

import torch

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4


def bin_tiles(
    means2d: torch.Tensor, radii: torch.Tensor, depths: torch.Tensor, tile_size: int, tiles_x: int, tiles_y: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tile table [I * tiles_y * tiles_x, K] of flat Gaussian indices (image * N + n), front to
    back, padded with -1; per-tile counts). Inputs are per image: [I, N, 2], [I, N, 2], [I, N]."""
    num_images, n = depths.shape
    lo = torch.floor((means2d - radii) / tile_size).long()
    hi = torch.ceil((means2d + radii) / tile_size).long()
    limit = torch.tensor([tiles_x, tiles_y], device=lo.device)
    lo = torch.minimum(lo.clamp_min(0), limit)
    hi = torch.minimum(hi.clamp_min(0), limit)
    span = (hi - lo).clamp_min(0)
    count = span[..., 0] * span[..., 1] * (radii > 0).all(-1)
    flat_count = count.flatten()
    # Expand to (Gaussian, tile) pairs in depth order; a stable sort by tile keeps that order.
    order = torch.argsort(depths.flatten(), stable=True)
    order = order[flat_count[order] > 0]
    reps = flat_count[order]
    owner = torch.repeat_interleave(order, reps)
    start = torch.cumsum(reps, 0) - reps
    k = torch.arange(len(owner), device=owner.device) - torch.repeat_interleave(start, reps)
    span_x = span.reshape(-1, 2)[owner, 0]
    lo_flat = lo.reshape(-1, 2)[owner]
    tx = lo_flat[:, 0] + k % span_x
    ty = lo_flat[:, 1] + k // span_x
    image = owner // n
    tile = (image * tiles_y + ty) * tiles_x + tx
    tile, perm = torch.sort(tile, stable=True)
    owner = owner[perm]
    num_tiles = num_images * tiles_y * tiles_x
    per_tile = torch.bincount(tile, minlength=num_tiles)
    first = torch.cumsum(per_tile, 0) - per_tile
    slot = torch.arange(len(tile), device=tile.device) - first[tile]
    table = torch.full((num_tiles, int(per_tile.max()) if len(tile) else 0), -1, dtype=torch.long,
                       device=tile.device)  # fmt: skip
    table[tile, slot] = owner
    return table, per_tile


def composite(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    radii: torch.Tensor,
    depths: torch.Tensor,
    width: int,
    height: int,
    tile_size: int = 16,
    max_elements: int = 1 << 24,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image [I, N, ...] projected Gaussians (gsplat's projection outputs, colours [I, N, D])
    -> colours [I, H, W, D] and alphas [I, H, W, 1]."""
    num_images, n, d = colors.shape
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    table, per_tile = bin_tiles(means2d.detach(), radii, depths.detach(), tile_size, tiles_x, tiles_y)
    pixels = tile_size * tile_size
    num_tiles, k = table.shape
    # Zeros that still belong to the graph, so a view with no Gaussian in it back-propagates (nothing).
    anchor = 0.0 * (colors.sum() + opacities.sum())
    out_rgb = colors.new_zeros(num_tiles, pixels, d) + anchor
    out_alpha = colors.new_zeros(num_tiles, pixels) + anchor
    if k:
        local = torch.arange(pixels, device=colors.device)
        offset = torch.stack([local % tile_size, local // tile_size], -1).to(means2d.dtype) + 0.5  # [P, 2]
        tile_ids = torch.arange(num_tiles, device=colors.device)
        origin = torch.stack([tile_ids % tiles_x, (tile_ids // tiles_x) % tiles_y], -1).to(means2d.dtype) * tile_size
        flat_m, flat_c = means2d.reshape(-1, 2), conics.reshape(-1, 3)
        flat_o, flat_col = opacities.reshape(-1), colors.reshape(-1, d)
        # Tiles from the fewest Gaussians to the most, chunked so that a chunk pads to at most twice
        # its smallest tile's count (and holds at most max_elements values).
        occupied = (per_tile > 0).nonzero()[:, 0]
        occupied = occupied[torch.argsort(per_tile[occupied], stable=True)]
        counts = per_tile[occupied].tolist()
        rgb_parts, alpha_parts = [], []
        s = 0
        while s < len(occupied):
            e = s + 1
            while (e < len(occupied) and counts[e] <= 2 * counts[s]
                   and (e + 1 - s) * counts[e] * pixels <= max_elements):  # fmt: skip
                e += 1
            tiles = occupied[s:e]
            idx = table[tiles, : counts[e - 1]]
            s = e
            valid = idx >= 0
            safe = idx.clamp_min(0)
            delta = (origin[tiles, None, None, :] + offset[None, :, None, :]) - flat_m[safe][:, None]  # [t, P, K, 2]
            con = flat_c[safe][:, None]  # [t, 1, K, 3]
            sigma = 0.5 * (con[..., 0] * delta[..., 0] ** 2 + con[..., 2] * delta[..., 1] ** 2) + (
                con[..., 1] * delta[..., 0] * delta[..., 1]
            )
            alpha = (flat_o[safe][:, None] * torch.exp(-sigma)).clamp(max=ALPHA_MAX)
            alpha = torch.where(valid[:, None] & (sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
            through = torch.cumprod(1.0 - alpha, dim=-1)  # transmittance after each Gaussian
            before = torch.cat([torch.ones_like(through[..., :1]), through[..., :-1]], dim=-1)
            weight = alpha * before * (through > T_MIN)
            rgb_parts.append(torch.einsum("tpk,tkd->tpd", weight, flat_col[safe]))
            alpha_parts.append(weight.sum(-1))
        out_rgb = out_rgb.index_copy(0, occupied, torch.cat(rgb_parts))
        out_alpha = out_alpha.index_copy(0, occupied, torch.cat(alpha_parts))

    def untile(x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        x = x.reshape(num_images, tiles_y, tiles_x, tile_size, tile_size, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(num_images, tiles_y * tile_size, tiles_x * tile_size, c)[:, :height, :width]

    return untile(out_rgb), untile(out_alpha[..., None])
