"""Procedural appearance for reference renders: skin, hair, garments by body region, patterns,
Lambert lighting and backgrounds, all drawn from one RNG so a sample is reproducible.

Patterns are evaluated on the canonical (A-pose) coordinates of the surface, so stripes and checks
stick to the body as it moves, like printed cloth, instead of swimming in screen space.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamer_core.bodies.skeleton import PART_NAMES
from dreamer_core.errors import PipelineInputError

REGIONS = ("skin", "hair", "top", "bottom", "shoes")
_PART_SIDELESS = np.array([p.removeprefix("left_").removeprefix("right_") for p in PART_NAMES])
SKIN_TONES = np.array([[0.98, 0.85, 0.75], [0.94, 0.76, 0.62], [0.84, 0.64, 0.49], [0.72, 0.52, 0.38],
                       [0.55, 0.38, 0.26], [0.40, 0.27, 0.18], [0.28, 0.19, 0.13]])  # fmt: skip
HAIR_COLOURS = np.array([[0.08, 0.06, 0.05], [0.25, 0.15, 0.08], [0.50, 0.33, 0.18], [0.85, 0.70, 0.45],
                         [0.60, 0.25, 0.10], [0.75, 0.75, 0.75]])  # fmt: skip
PATTERNS = ("solid", "stripes", "checks", "noise")
BACKGROUNDS = ("gradient", "noise", "tiles", "images")


@dataclass(frozen=True)
class Garment:
    colour_a: np.ndarray
    colour_b: np.ndarray
    pattern: str
    frequency: float  # cycles per metre on the canonical body
    direction: np.ndarray  # unit vector in canonical space (stripes) / noise seed directions


@dataclass(frozen=True)
class Appearance:
    skin: np.ndarray
    hair: np.ndarray
    top: Garment
    bottom: Garment
    shoes: np.ndarray
    long_sleeves: bool
    long_pants: bool
    hair_length: float  # how far down the head hair reaches (fraction of head height)
    light_dir: np.ndarray  # unit, world frame, pointing from the surface towards the light
    ambient: float
    key: float
    background: str
    background_seed: int


def _colour(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([rng.uniform(0, 1), rng.uniform(0.2, 0.9), rng.uniform(0.15, 0.95)])
    return _hsv_to_rgb(hsv)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h, s, v = hsv
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _garment(rng: np.random.Generator) -> Garment:
    d = rng.normal(size=3)
    return Garment(_colour(rng), _colour(rng), str(rng.choice(PATTERNS, p=[0.4, 0.25, 0.15, 0.2])),
                   float(rng.uniform(8, 25)), d / np.linalg.norm(d))  # fmt: skip


def sample_appearance(rng: np.random.Generator, backgrounds: tuple[str, ...] = BACKGROUNDS[:3]) -> Appearance:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.05)
    light = np.array([rng.uniform(-1, 1), rng.uniform(0.2, 1.0), rng.uniform(-1, 1)])
    return Appearance(
        skin=np.clip(skin, 0, 1),
        hair=HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))],
        top=_garment(rng),
        bottom=_garment(rng),
        shoes=_colour(rng) * 0.6,
        long_sleeves=bool(rng.random() < 0.6),
        long_pants=bool(rng.random() < 0.7),
        hair_length=float(rng.uniform(0.35, 1.2)),
        light_dir=light / np.linalg.norm(light),
        ambient=float(rng.uniform(0.35, 0.6)),
        key=float(rng.uniform(0.5, 0.8)),
        background=str(rng.choice(backgrounds)),
        background_seed=int(rng.integers(2**31)),
    )


def vertex_regions(part_labels: np.ndarray, canonical: np.ndarray, appearance: Appearance) -> np.ndarray:
    """Region index (into REGIONS) per vertex, from body parts and the canonical shape."""
    side = _PART_SIDELESS[part_labels]
    region = np.full(len(side), REGIONS.index("top"))
    region[np.isin(side, ["hip", "pelvis"])] = REGIONS.index("bottom")
    region[side == "knee"] = REGIONS.index("bottom" if appearance.long_pants else "skin")
    region[np.isin(side, ["ankle", "foot"])] = REGIONS.index("shoes")
    region[side == "elbow"] = REGIONS.index("top" if appearance.long_sleeves else "skin")
    region[np.isin(side, ["wrist", "neck"])] = REGIONS.index("skin")
    head = side == "head"
    region[head] = REGIONS.index("skin")
    if head.any():
        y, z = canonical[head, 1], canonical[head, 2]
        top, bottom = y.max(), y.min()
        centre_z = z.mean()
        height = top - bottom
        crown = y > top - 0.3 * height
        back = (z < centre_z) & (y > top - appearance.hair_length * height)
        hair = np.zeros(len(side), bool)
        hair[np.flatnonzero(head)[crown | back]] = True
        region[hair] = REGIONS.index("hair")
    return region


def _pattern(g: Garment, coords: np.ndarray) -> np.ndarray:
    """Weight of colour_b at canonical surface coordinates [N, 3] -> [N]."""
    if g.pattern == "solid":
        return np.zeros(len(coords))
    phase = coords @ g.direction * g.frequency * 2 * np.pi
    if g.pattern == "stripes":
        return (np.sin(phase) > 0).astype(float)
    if g.pattern == "checks":
        a = np.sin(coords[:, 1] * g.frequency * 2 * np.pi)
        b = np.sin((coords[:, 0] + coords[:, 2]) * g.frequency * 2 * np.pi)
        return ((a * b) > 0).astype(float)
    dirs = np.stack([np.roll(g.direction, k) * (1 + k) for k in range(3)])
    n = np.sin(coords @ dirs.T * g.frequency + np.arange(3)).sum(-1) / 3
    return np.clip(0.5 + n, 0, 1)


def surface_colour(region: np.ndarray, coords: np.ndarray, app: Appearance) -> np.ndarray:
    """Albedo [N, 3] for surface points with region ids and canonical coordinates."""
    out = np.zeros((len(region), 3))
    plain = {"skin": app.skin, "hair": app.hair, "shoes": app.shoes}
    for name, colour in plain.items():
        out[region == REGIONS.index(name)] = colour
    for name, g in (("top", app.top), ("bottom", app.bottom)):
        sel = region == REGIONS.index(name)
        w = _pattern(g, coords[sel])[:, None]
        out[sel] = (1 - w) * g.colour_a + w * g.colour_b
    return out


def shade(albedo: np.ndarray, normals: np.ndarray, app: Appearance) -> np.ndarray:
    lambert = np.clip(normals @ app.light_dir, 0.0, 1.0)
    return np.clip(albedo * (app.ambient + app.key * lambert)[:, None], 0.0, 1.0)


def background(kind: str, size: int, seed: int, image_files: list[Path] | None = None) -> np.ndarray:
    """Procedural backdrop [size, size, 3] in [0, 1] (or a random crop of a user image)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    if kind == "gradient":
        a, b = _colour(rng), _colour(rng)
        ang = rng.uniform(0, 2 * np.pi)
        w = np.clip((np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) + 0.5, 0, 1)[..., None]
        return (1 - w) * a + w * b
    if kind == "noise":
        cells = int(rng.integers(3, 9))
        # Muted value noise around one base colour (a blurry room or foliage, not a rainbow).
        base = _colour(rng)
        grid = base * rng.uniform(0.5, 1.3, (cells + 1, cells + 1, 1)) + rng.normal(0, 0.06, (cells + 1, cells + 1, 3))
        gx, gy = xx * cells, yy * cells
        x0, y0 = np.minimum(gx.astype(int), cells - 1), np.minimum(gy.astype(int), cells - 1)
        fx, fy = (gx - x0)[..., None], (gy - y0)[..., None]
        top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
        bot = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
        return np.clip(top * (1 - fy) + bot * fy, 0, 1)
    if kind == "tiles":
        a, b = _colour(rng), _colour(rng)
        n = rng.uniform(3, 10)
        ang = rng.uniform(0, np.pi / 2)
        u = np.cos(ang) * xx + np.sin(ang) * yy
        v = -np.sin(ang) * xx + np.cos(ang) * yy
        w = ((np.floor(u * n) + np.floor(v * n)) % 2)[..., None]
        floor = yy[..., None] > rng.uniform(0.55, 0.8)  # a floor line for a room-like backdrop
        return np.where(floor, (1 - w) * a + w * b, (a + b) / 2 * 0.9)
    if kind == "images":
        if not image_files:
            raise PipelineInputError("background 'images' needs a folder with images (backgrounds_dir)")
        return _image_crop(image_files[int(rng.integers(len(image_files)))], size, rng)
    raise PipelineInputError(f"unknown background kind {kind!r}; expected one of {BACKGROUNDS}")


def _image_crop(path: Path, size: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            im = im.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise PipelineInputError(
            f"{path}: not a readable image ({exc}); remove it from the backgrounds folder"
        ) from exc


def list_background_images(folder: str) -> list[Path]:
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise PipelineInputError(f"backgrounds_dir: {root} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    if not files:
        raise PipelineInputError(f"backgrounds_dir: no .jpg/.png/.webp images under {root}")
    return files
