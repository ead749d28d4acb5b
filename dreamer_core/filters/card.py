"""The dataset card (``README.md`` next to the data): what is in it, what each filter stage
rejected, pose and OKS histograms, and the licences a user inherits from the body model and the
generator."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dreamer_core.config import FilterSettings
from dreamer_core.filters.stages import STAGES
from dreamer_core.viz import figure_png, plt  # viz selects the headless backend first

BODY_LICENCES = {
    "anny": "Anny (NAVER Corp.): code Apache-2.0; MakeHuman/MPFB2 assets CC0-1.0. Its SMPL-X topology is "
    "non-commercial (not used here).",
    "smpl": "SMPL (Max Planck Institute): non-commercial scientific research licence; the labels are SMPL "
    "parameters, so the dataset inherits it.",
    "smplx": "SMPL-X (Max Planck Institute): non-commercial scientific research licence; the labels are SMPL-X "
    "parameters, so the dataset inherits it.",
}
GENERATOR_LICENCES = {
    "tiny": "tiny generator trained in this pipeline on its own renders: no third-party weights.",
    "sd15_controlnet": "Stable Diffusion 1.5: CreativeML OpenRAIL-M (use restrictions apply); check the "
    "ControlNet's own licence.",
    "sdxl_controlnet": "Stable Diffusion XL: CreativeML Open RAIL++-M; check the ControlNet's own licence.",
    "flux_control": "FLUX.1: [dev] weights are under the FLUX.1 [dev] Non-Commercial License, [schnell] under "
    "Apache-2.0; check the weights you configured.",
}


def histogram_png(groups: dict[str, np.ndarray], bins: np.ndarray, xlabel: str, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    for name, values in groups.items():
        values = values[np.isfinite(values)]
        if len(values):
            ax.hist(values, bins=bins, alpha=0.55, label=f"{name} (n={len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def bar_png(counts: pd.DataFrame, title: str) -> bytes:
    """Grouped bars: rows are categories, columns are series."""
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    counts.plot.bar(ax=ax, rot=30)
    ax.set_ylabel("samples")
    ax.set_title(title)
    fig.tight_layout()
    return figure_png(fig)


def _table(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def dataset_card(manifest: pd.DataFrame, counts: dict[str, dict[str, int]], settings: FilterSettings,
                 body_model: str, generator_backend: str, images: dict[str, str]) -> str:  # fmt: skip
    """Markdown for ``README.md``; ``images`` maps a caption to a file next to it."""
    kept = manifest[manifest.decision == "kept"]
    per_round = (
        manifest.groupby("round")
        .agg(raw=("key", "size"), kept=("decision", lambda d: int((d == "kept").sum())), mean_oks=("oks", "mean"),
             mean_predicted_oks=("predicted_oks", "mean"))
        .reset_index()
    )  # fmt: skip
    stage_rows = pd.DataFrame([{"stage": s, **counts[s]} for s in STAGES])
    rejected = manifest.loc[manifest.decision == "rejected", "reason"]
    top = rejected.str.replace(r"\(.*\)| of \S+|[\d.]+", "", regex=True).str.strip(" <>:").value_counts().head(8)
    lines = [
        "# Filtered dataset (PoseDreamer pipeline)",
        "",
        "Generated images of posed bodies with labels that are exact by construction (the body model's "
        "parameters, 3D joints, 2D keypoints, camera), kept only where the pixels agree with the labels.",
        "",
        f"- samples: **{len(kept)} kept** of {len(manifest)} generated ({len(manifest) - len(kept)} rejected)",
        f"- body model: `{body_model}`; generator backend: `{generator_backend}`",
        "- files: `shard-*.tar` (WebDataset: `<key>.png` image, `.control.png`, `.mask.png`, `.json` labels), "
        "`manifest.parquet` (every generated sample, kept and rejected, with each stage's decision, score and "
        "reason), `bedlam_labels.npz` when the body model is SMPL / SMPL-X",
        "",
        "## Per round",
        "",
        _table(per_round),
        "",
        "## Filter stages (in order; a rejected sample is not_reached by later stages)",
        "",
        _table(stage_rows),
        "",
        "Thresholds: "
        + ", ".join(f"`{k}={v}`" for k, v in sorted(settings.to_dict().items()) if k != "samples_per_shard"),
        "",
        "Most common rejection reasons:",
        "",
        *[f"- {reason}: {n}" for reason, n in top.items()],
        "",
        "## Histograms",
        "",
        *[f"![{caption}]({name})\n" for caption, name in images.items()],
        "## Licences",
        "",
        f"- body model: {BODY_LICENCES.get(body_model, 'see the body model files you configured')}",
        f"- generator: {GENERATOR_LICENCES.get(generator_backend, 'see the weights you configured')}",
        "- poses: the pose bank's sources (anatomical sampler: generated here; AMASS when configured: AMASS licence, "
        "non-commercial research).",
        "",
    ]
    return "\n".join(lines)
