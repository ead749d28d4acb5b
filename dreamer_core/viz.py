"""Preview images for asset metadata and tracking runs (matplotlib, headless)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dreamer_core.bodies.skeleton import SKELETON_JOINTS, SKELETON_PARENTS  # noqa: E402


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
