"""Load whichever detector a folder holds, so downstream code (OKS scoring, filtering) does not
care whether it was trained here (``HeatmapNet``) or is a pretrained ViTPose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dreamer_core.errors import PipelineInputError


def load_detector(folder: str | Path, device: Any = "cpu") -> Any:
    """An object with ``predict(images [B,3,H,W] in [0,1]) -> {"keypoints", "scores", ...}`` (CPU
    tensors out) scoring on ``device``."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise PipelineInputError(f"{folder}: no detector config.json; materialize pose_detector first")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("class") == "HeatmapNet":
        from dreamer_core.keypoints.heatmap import HeatmapNet

        return HeatmapNet.load(folder).to(device)
    if "VitPoseForPoseEstimation" in (cfg.get("architectures") or []):
        from dreamer_core.keypoints.vitpose import VitPoseDetector

        return VitPoseDetector.from_pretrained(str(folder), offline=True).to(device)
    raise PipelineInputError(f"{cfg_path}: unknown detector type (neither HeatmapNet nor ViTPose)")
