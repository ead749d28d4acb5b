"""Ray casting posed meshes with NVIDIA Warp: one kernel for CPU and CUDA, a BVH per topology,
refit (not rebuilt) when the vertices move to the next pose.

Per pixel it returns the hit distance, face id and barycentric weights; everything else (depth,
mask, normals, part labels, PNCC colours, texture coordinates) is derived from those three, so
every image and label of a sample comes from the same geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dreamer_core.render.cameras import Camera

_KERNEL = None


def _warp():
    import warp as wp

    wp.config.quiet = True
    wp.init()
    return wp


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        wp = _warp()

        @wp.kernel
        def cast(
            mesh: wp.uint64,
            origin: wp.vec3,
            dirs: wp.array(dtype=wp.vec3),
            max_t: float,
            t_out: wp.array(dtype=float),
            face_out: wp.array(dtype=int),
            uv_out: wp.array(dtype=wp.vec2),
        ):
            tid = wp.tid()
            q = wp.mesh_query_ray(mesh, origin, dirs[tid], max_t)
            if q.result:
                t_out[tid] = q.t
                face_out[tid] = q.face
                uv_out[tid] = wp.vec2(q.u, q.v)
            else:
                t_out[tid] = 0.0
                face_out[tid] = -1
                uv_out[tid] = wp.vec2(0.0, 0.0)

        _KERNEL = cast
    return _KERNEL


@dataclass
class Hits:
    """Ray-cast result at (supersampled) resolution [H, W]."""

    depth: np.ndarray  # camera-frame z in metres, 0 where no hit
    face: np.ndarray  # int face id, -1 where no hit
    bary: np.ndarray  # [H, W, 3] weights of the face's three vertices
    points: np.ndarray  # [H, W, 3] world-space hit points

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0


class Raycaster:
    """Holds one Warp mesh per topology; ``set_vertices`` refits it for each new pose."""

    def __init__(self, faces: np.ndarray, device: str = "cpu") -> None:
        self.wp = _warp()
        self.device = device
        self.faces = np.ascontiguousarray(faces, dtype=np.int32)
        self._mesh = None
        self._points = None
        self._vertices: np.ndarray | None = None

    def set_vertices(self, vertices: np.ndarray) -> None:
        wp = self.wp
        v = np.ascontiguousarray(vertices, dtype=np.float32)
        if self._mesh is None or self._points.shape[0] != len(v):
            self._points = wp.array(v, dtype=wp.vec3, device=self.device)
            self._mesh = wp.Mesh(points=self._points, indices=wp.array(self.faces.reshape(-1), dtype=wp.int32,
                                                                       device=self.device))  # fmt: skip
        else:
            self._points.assign(v)
            self._mesh.refit()
        self._vertices = v

    def cast(self, camera: Camera, supersample: int = 1, max_t: float = 1e3) -> Hits:
        if self._mesh is None or self._vertices is None:
            raise RuntimeError("call set_vertices before cast")
        wp = self.wp
        origin, dirs = camera.rays(supersample)
        h, w = dirs.shape[:2]
        n = h * w
        d = wp.array(np.ascontiguousarray(dirs.reshape(-1, 3), dtype=np.float32), dtype=wp.vec3, device=self.device)
        t = wp.empty(n, dtype=float, device=self.device)
        face = wp.empty(n, dtype=int, device=self.device)
        uv = wp.empty(n, dtype=wp.vec2, device=self.device)
        wp.launch(_kernel(), dim=n, inputs=[self._mesh.id, wp.vec3(*origin.astype(np.float32)), d, max_t],
                  outputs=[t, face, uv], device=self.device)  # fmt: skip
        t_np, face_np, uv_np = t.numpy().reshape(h, w), face.numpy().reshape(h, w), uv.numpy().reshape(h, w, 2)
        bary = np.concatenate([uv_np, 1.0 - uv_np.sum(-1, keepdims=True)], axis=-1)
        hit = face_np >= 0
        bary[~hit] = 0.0
        points = origin + dirs * t_np[..., None]
        points[~hit] = 0.0
        depth = np.where(hit, t_np * (dirs @ camera.R[2]), 0.0)
        return Hits(depth=depth.astype(np.float32), face=face_np.astype(np.int32), bary=bary.astype(np.float32),
                    points=points.astype(np.float32))  # fmt: skip

    def interpolate(self, hits: Hits, values: np.ndarray) -> np.ndarray:
        """Barycentric blend of per-vertex ``values`` [V, C] at each hit -> [H, W, C] (0 off-body)."""
        out = np.zeros((*hits.face.shape, values.shape[1]), dtype=values.dtype)
        out[hits.mask] = self.interpolate_hits(hits, values)
        return out

    def interpolate_hits(self, hits: Hits, values: np.ndarray) -> np.ndarray:
        """The same blend for hit pixels only, in row-major order -> [N_hit, C]."""
        m = hits.mask
        tri = self.faces[hits.face[m]]
        return np.einsum("nk,nkc->nc", hits.bary[m].astype(values.dtype), values[tri])


def downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Box filter [H*f, W*f, ...] -> [H, W, ...] (supersampling anti-aliasing)."""
    if factor == 1:
        return img
    if img.shape[0] % factor or img.shape[1] % factor:
        raise ValueError(f"image {img.shape[:2]} is not a multiple of the supersampling factor {factor}")
    h, w = img.shape[0] // factor, img.shape[1] // factor
    return img.reshape(h, factor, w, factor, *img.shape[2:]).mean(axis=(1, 3))
