"""Pinhole cameras in the OpenCV convention (x right, y down, z forward; pixels; metres).

A camera maps world points X to camera points R X + t and to pixels K (R X + t) / z. Pixel
centres sit at integer coordinates + 0.5, i.e. pixel (i, j) covers [j, j+1) x [i, i+1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    K: np.ndarray  # [3, 3]
    R: np.ndarray  # [3, 3] world -> camera rotation
    t: np.ndarray  # [3]
    width: int
    height: int

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return points @ self.R.T + self.t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points [..., 3] -> (pixels [..., 2], depth [...])."""
        cam = self.to_camera(points)
        z = cam[..., 2]
        uv = cam @ self.K.T
        return uv[..., :2] / z[..., None], z

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        return -self.R.T @ self.t

    def rays(self, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """World-space ray origin [3] and unit directions [H*s, W*s, 3] through sub-pixel centres."""
        s = supersample
        jj, ii = np.meshgrid((np.arange(self.width * s) + 0.5) / s, (np.arange(self.height * s) + 0.5) / s)
        pix = np.stack([jj, ii, np.ones_like(jj)], axis=-1)
        d_cam = pix @ np.linalg.inv(self.K).T
        d_world = d_cam @ self.R  # R^T d for row vectors
        d_world /= np.linalg.norm(d_world, axis=-1, keepdims=True)
        return self.center, d_world

    def crop(self, x0: float, y0: float, size: float, out_size: int) -> Camera:
        """The camera that sees the square [x0, x0+size) x [y0, y0+size) of this image, resampled
        to ``out_size`` pixels: principal point shifted and focal scaled to match."""
        scale = out_size / size
        K = self.K.copy()
        K[0, 2] = (K[0, 2] - x0) * scale
        K[1, 2] = (K[1, 2] - y0) * scale
        K[0, 0] *= scale
        K[1, 1] *= scale
        return Camera(K=K, R=self.R.copy(), t=self.t.copy(), width=out_size, height=out_size)

    def to_dict(self) -> dict:
        return {"K": self.K.tolist(), "R": self.R.tolist(), "t": self.t.tolist(),
                "width": self.width, "height": self.height}  # fmt: skip


def intrinsics(focal: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])


WORLD_UP = np.array([0.0, 1.0, 0.0])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV extrinsics (R, t) of a camera at ``eye`` looking at ``target``, world ``up`` = image up."""
    up = WORLD_UP if up is None else up
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(-up, z)  # OpenCV: x = y (down) cross z (forward)
    if np.linalg.norm(x) < 1e-8:
        x = np.cross(np.array([0.0, 0.0, 1.0]), z)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)  # image y points down
    R = np.stack([x, y, z])
    return R, -R @ eye


def rotation_yaw_pitch(yaw: float, pitch: float) -> np.ndarray:
    """World rotation: yaw about +Y, then pitch about the camera's x axis (no roll)."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rx @ ry


@dataclass(frozen=True)
class CameraSampling:
    focal_range: tuple[float, float]  # in pixels of the full (pre-crop) frame
    frame_size: int  # full frame before cropping (square)
    distance_range: tuple[float, float]  # metres from camera to pelvis
    pitch_deg: float  # +/- range
    margin: float  # crop margin around the projected body (0.1 = 10%)
    min_body_px: float  # bodies whose crop side is smaller than this are skipped
    out_size: int


class BodyTooSmall(Exception):
    """The projected body is too small (or behind the camera) for a useful crop."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def sample_camera(vertices: np.ndarray, rng: np.random.Generator, cfg: CameraSampling) -> Camera:
    """PoseDreamer-style view of a posed body (pelvis near the origin): random yaw over the full
    circle, small pitch, no roll, focal from a range; then a square crop around the projected body
    plus a margin, with the principal point shifted to match."""
    yaw = rng.uniform(-math.pi, math.pi)
    pitch = math.radians(rng.uniform(-cfg.pitch_deg, cfg.pitch_deg))
    focal = rng.uniform(*cfg.focal_range)
    dist = rng.uniform(*cfg.distance_range)
    centre = (vertices.max(0) + vertices.min(0)) / 2
    # At yaw 0 the camera faces the body's front: camera x = world +X, y = -Y, z = -Z.
    R = np.diag([1.0, -1.0, -1.0]) @ rotation_yaw_pitch(yaw, pitch)
    t = -R @ centre + np.array([0.0, 0.0, dist])
    half = cfg.frame_size / 2
    full = Camera(intrinsics(focal, half, half), R, t, cfg.frame_size, cfg.frame_size)
    uv, z = full.project(vertices)
    if (z <= 0.05).any():
        raise BodyTooSmall("behind_camera", "body behind or too close to the camera")
    lo, hi = uv.min(0), uv.max(0)
    side = float((hi - lo).max()) * (1 + 2 * cfg.margin)
    if side < cfg.min_body_px:
        raise BodyTooSmall("too_small", f"projected body {side:.0f} px < min_body_px {cfg.min_body_px:g}")
    mid = (lo + hi) / 2
    return full.crop(mid[0] - side / 2, mid[1] - side / 2, side, cfg.out_size)


def multiview_rig(count: int, radius: float, elevations_deg: list[float], focal: float, size: int,
                  target: np.ndarray) -> list[Camera]:  # fmt: skip
    """``count`` calibrated cameras per elevation ring, evenly spaced in azimuth around ``target``."""
    cams = []
    for elev in elevations_deg:
        e = math.radians(elev)
        for k in range(count):
            az = 2 * math.pi * k / count
            eye = target + radius * np.array([math.cos(e) * math.sin(az), math.sin(e), math.cos(e) * math.cos(az)])
            R, t = look_at(eye, target)
            cams.append(Camera(intrinsics(focal, size / 2, size / 2), R, t, size, size))
    return cams
