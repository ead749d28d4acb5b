"""One posed body + one camera -> control image, reference image, mask, depth, part ids.

All outputs come from one ray cast at ``supersample`` x the output resolution and are box-filtered
down, so edges are anti-aliased and the mask, the PNCC control and the shaded image agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamer_core.bodies.base import BodyModel
from dreamer_core.render.appearance import Appearance, background, shade, surface_colour, vertex_regions
from dreamer_core.render.cameras import Camera
from dreamer_core.render.raycast import Hits, Raycaster, downsample


@dataclass
class RenderOutput:
    control: np.ndarray  # [H, W, 3] uint8 PNCC, black background
    mask: np.ndarray  # [H, W] uint8 coverage 0..255
    depth: np.ndarray  # [H, W] float32 metres (camera z), 0 off-body
    parts: np.ndarray  # [H, W] uint8 part id + 1, 0 off-body
    image: np.ndarray | None = None  # [H, W, 3] uint8 shaded reference image over a background


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(vertices)
    for k in range(3):
        for c in range(3):
            vn[:, c] += np.bincount(faces[:, k], weights=fn[:, c], minlength=len(vertices))
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


class BodyRenderer:
    """Renders any ``BodyModel`` topology; keep one per process (the BVH is reused across poses)."""

    def __init__(self, body: BodyModel, device: str = "cpu") -> None:
        self.faces = body.faces.cpu().numpy().astype(np.int64)
        self.raycaster = Raycaster(self.faces, device=device)
        canon = body.canonical_vertices.detach().cpu().numpy().astype(np.float64)
        lo, hi = canon.min(0), canon.max(0)
        self.canonical = canon
        # PNCC: each vertex coloured by its normalised canonical A-pose XYZ (left and right differ in x).
        self.pncc = (canon - lo) / (hi - lo)
        self.part_labels = body.part_labels
        self._out_size = 0

    def cast(self, vertices: np.ndarray, camera: Camera, supersample: int) -> Hits:
        self.raycaster.set_vertices(vertices)
        return self.raycaster.cast(camera, supersample)

    def render(
        self,
        vertices: np.ndarray,
        camera: Camera,
        supersample: int = 2,
        appearance: Appearance | None = None,
        background_files: list[Path] | None = None,
    ) -> RenderOutput:
        s = supersample
        self._out_size = camera.width
        hits = self.cast(vertices, camera, s)
        hit = hits.mask
        cover = downsample(hit.astype(np.float64), s)
        control = downsample(self.raycaster.interpolate(hits, self.pncc), s)
        depth_sum = downsample(hits.depth.astype(np.float64), s)
        depth = np.where(cover > 0, depth_sum / np.maximum(cover, 1e-9), 0.0)
        centre = hits.face[s // 2 :: s, s // 2 :: s]
        nearest = self._nearest_vertex(hits)[s // 2 :: s, s // 2 :: s]
        parts = np.where(centre >= 0, self.part_labels[nearest] + 1, 0).astype(np.uint8)
        out = RenderOutput(control=to_uint8(control), mask=to_uint8(cover), depth=depth.astype(np.float32), parts=parts)
        if appearance is not None:
            out.image = to_uint8(downsample(self._shade(vertices, hits, appearance, background_files), s))
        return out

    def _nearest_vertex(self, hits: Hits) -> np.ndarray:
        f = np.where(hits.mask, hits.face, 0)
        return self.faces[f, hits.bary.argmax(-1)]

    def _shade(self, vertices: np.ndarray, hits: Hits, app: Appearance, files: list[Path] | None) -> np.ndarray:
        h, w = hits.face.shape
        if h != w:
            raise ValueError("renders are square")
        # Backdrops are smooth: draw them at output resolution and repeat to the supersampled grid.
        s = h // self._out_size if self._out_size else 1
        bg = background(app.background, h // s, app.background_seed, files).repeat(s, 0).repeat(s, 1)
        hit = hits.mask
        regions = vertex_regions(self.part_labels, self.canonical, app)
        nearest = self._nearest_vertex(hits)[hit]
        coords = self.raycaster.interpolate_hits(hits, self.canonical)
        normals = self.raycaster.interpolate_hits(hits, vertex_normals(vertices.astype(np.float64), self.faces))
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        albedo = surface_colour(regions[nearest], coords, app)
        img = bg.copy()
        img[hit] = shade(albedo, normals, app)
        return img
