"""Preview images for asset metadata and tracking runs (matplotlib, headless)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dreamer_core.bodies.skeleton import SKELETON_JOINTS, SKELETON_PARENTS  # noqa: E402
from dreamer_core.images import COCO_KEYPOINTS  # noqa: E402


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes without matplotlib's version stamp, so the same plot gives
    the same bytes (DVC then sees an unchanged output); closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def skeleton_grid_png(
    skeletons: np.ndarray, titles: list[str] | None = None, cols: int = 8, cell: float = 1.6
) -> bytes:
    """PNG of skeletons [N, 22, 3] (SMPL frame) seen from the front (x right-to-left flipped)."""
    n = len(skeletons)
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell, rows * cell * 1.2), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, sk in enumerate(skeletons):
        ax = axes.flat[i]
        # Camera in front of the body looks along -Z: body left (+X) appears on image right.
        x, y = sk[:, 0], sk[:, 1]
        for j, p in enumerate(SKELETON_PARENTS):
            if p < 0:
                continue
            name = SKELETON_JOINTS[j]
            colour = "tab:red" if name.startswith("left") else "tab:blue" if name.startswith("right") else "k"
            ax.plot([x[p], x[j]], [y[p], y[j]], color=colour, lw=1.5)
        ax.scatter(x, y, s=3, c="k")
        ax.set_aspect("equal")
        c = sk.mean(axis=0)
        ax.set_xlim(c[0] - 1.0, c[0] + 1.0)
        ax.set_ylim(c[1] - 1.0, c[1] + 1.0)
        if titles:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


_COCO_EDGES = [(5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (11, 12), (5, 11), (6, 12), (11, 13), (13, 15),
               (12, 14), (14, 16), (0, 1), (0, 2), (1, 3), (2, 4)]  # fmt: skip


def _with_keypoints(image: np.ndarray, kp: np.ndarray, cell: int, line: tuple[int, int, int] = (255, 255, 0)):
    """A ``cell``-sized copy of ``image`` with COCO-17 keypoints (u, v, visibility) and bones drawn."""
    from PIL import Image, ImageDraw

    tile = Image.fromarray(image if image.ndim == 3 else np.repeat(image[..., None], 3, -1))
    base = tile.resize((cell, cell), Image.NEAREST)
    draw = ImageDraw.Draw(base)
    kp = np.asarray(kp)[:COCO_KEYPOINTS]
    scale = cell / image.shape[1]
    for a, b in _COCO_EDGES:
        if kp[a, 2] > 0 and kp[b, 2] > 0:
            draw.line([tuple(kp[a, :2] * scale), tuple(kp[b, :2] * scale)], fill=line, width=1)
    for u, v, vis in kp:
        colour = (255, 0, 0) if vis == 2 else (0, 128, 255)
        if vis > 0:
            draw.ellipse([u * scale - 2, v * scale - 2, u * scale + 2, v * scale + 2], fill=colour)
    return base


def _grid(rows: list[list], cell: int) -> bytes:
    from PIL import Image

    canvas = Image.new("RGB", (max(len(r) for r in rows) * cell, len(rows) * cell))
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            canvas.paste(tile.resize((cell, cell), Image.NEAREST), (c * cell, r * cell))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def sample_grid_png(rows: list[list[np.ndarray]], keypoints: list[np.ndarray] | None = None, cell: int = 128) -> bytes:
    """PNG grid, one sample per row: its images side by side (uint8 [H, W, 3] or [H, W]), plus a
    copy of the first with its 2D keypoints (u, v, visibility) and skeleton drawn over it."""
    from PIL import Image

    tiles = []
    for r, images in enumerate(rows):
        row = [Image.fromarray(im if im.ndim == 3 else np.repeat(im[..., None], 3, -1)) for im in images]
        if keypoints is not None:
            row.append(_with_keypoints(images[0], keypoints[r], cell))
        tiles.append(row)
    return _grid(tiles, cell)


def keypoint_overlay_png(images: list[np.ndarray], truth: list[np.ndarray], predicted: list[np.ndarray],
                         cell: int = 128) -> bytes:  # fmt: skip
    """Per sample: the image | its true keypoints | the model's projected keypoints (magenta bones),
    so a reader sees at a glance where a pose estimate goes wrong."""
    from PIL import Image

    rows = [[Image.fromarray(im), _with_keypoints(im, t, cell), _with_keypoints(im, p, cell, (255, 0, 255))]
            for im, t, p in zip(images, truth, predicted, strict=True)]  # fmt: skip
    return _grid(rows, cell)
