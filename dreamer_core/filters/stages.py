"""The filter stages, in order; each records per sample a decision, a score and a reason.

1. crowding: no person or more than ``max_people`` (components of the detector's person mask);
2. pose: OKS (COCO's: the label's person-mask area as s^2) of the detected keypoints against the
   label >= ``min_oks``;
3. quality: blank (grey std), saturated (clipped share), blurred (Laplacian variance);
4. near_duplicate: perceptual-hash distance <= ``max_hash_distance`` to an earlier kept sample.

Scores are measured for every sample (``score_images``, cached per shard by the asset); decisions
(``decide``) cascade: a sample rejected at one stage is ``not_reached`` at the later ones, so
per-stage counts add up to the raw total.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from dreamer_core.config import FilterSettings
from dreamer_core.filters.phash import near_duplicates, phash
from dreamer_core.filters.quality import contrast, grey, saturated_fraction, sharpness
from dreamer_core.generate.evaluate import detect, per_sample_oks
from dreamer_core.keypoints.metrics import mask_area

STAGES = ("crowding", "pose", "quality", "near_duplicate")
SCORE_COLUMNS = ("people", "keypoint_score", "oks", "contrast", "saturated", "sharpness", "phash")


def count_people(det: dict[str, torch.Tensor], min_area: float) -> np.ndarray:
    """Person-mask components covering at least ``min_area`` of the image; a detector without a
    mask (ViTPose, top-down) sees at most one person."""
    if "mask" not in det:
        return np.ones(len(det["keypoints"]), dtype=np.int64)
    masks = (det["mask"] > 0.5).numpy()
    counts = np.zeros(len(masks), dtype=np.int64)
    for i, m in enumerate(masks):
        labels, n = ndimage.label(m)
        if n:
            areas = np.bincount(labels.ravel())[1:] / m.size
            counts[i] = int((areas >= min_area).sum())
    return counts


def score_images(detector: Any, images: np.ndarray, keypoints: np.ndarray, masks: np.ndarray,
                 min_person_area: float) -> pd.DataFrame:  # fmt: skip
    """Every stage's measurement for uint8 images [N, H, W, 3] with COCO-17 labels [N, 17, 3] and
    the labels' uint8 person masks [N, H, W] (the shards' ``mask.png``; their area is OKS's s^2)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    det = detect(detector, x)
    g = grey(images)
    return pd.DataFrame({
        "people": count_people(det, min_person_area),
        "keypoint_score": det["scores"].mean(dim=1).numpy().astype(np.float64),
        "oks": per_sample_oks(det["keypoints"].numpy(), keypoints, mask_area(masks)),
        "contrast": contrast(g).astype(np.float64),
        "saturated": saturated_fraction(images).astype(np.float64),
        "sharpness": sharpness(g).astype(np.float64),
        "phash": phash(images).view(np.int64),  # parquet has no uint64 everywhere; bits are kept
    })  # fmt: skip


def _stage_crowding(s: pd.DataFrame, f: FilterSettings) -> tuple[np.ndarray, np.ndarray, list[str]]:
    people = s["people"].to_numpy()
    empty = (people == 0) | (s["keypoint_score"].to_numpy() < f.min_keypoint_score)
    crowded = people > f.max_people
    reasons = ["no person detected" if e else f"{p} people detected (> {f.max_people})" if c else ""
               for e, c, p in zip(empty, crowded, people, strict=True)]  # fmt: skip
    return ~(empty | crowded), people.astype(np.float64), reasons


def _stage_pose(s: pd.DataFrame, f: FilterSettings) -> tuple[np.ndarray, np.ndarray, list[str]]:
    oks = s["oks"].to_numpy()
    ok = np.nan_to_num(oks, nan=-1.0) >= f.min_oks
    reasons = ["" if k else "no visible label keypoint" if np.isnan(v) else f"OKS {v:.3f} < {f.min_oks}"
               for k, v in zip(ok, oks, strict=True)]  # fmt: skip
    return ok, oks, reasons


def _stage_quality(s: pd.DataFrame, f: FilterSettings) -> tuple[np.ndarray, np.ndarray, list[str]]:
    c, sat, sharp = (s[k].to_numpy() for k in ("contrast", "saturated", "sharpness"))
    reasons = []
    for ci, si, hi in zip(c, sat, sharp, strict=True):
        if ci < f.min_std:
            reasons.append(f"blank: grey std {ci:.4f} < {f.min_std}")
        elif si > f.max_saturated:
            reasons.append(f"saturated: {si:.2f} of pixels clipped > {f.max_saturated}")
        elif hi < f.min_sharpness:
            reasons.append(f"blurred: Laplacian variance {hi:.5f} < {f.min_sharpness}")
        else:
            reasons.append("")
    ok = np.array([r == "" for r in reasons])
    # One number per sample: how far the tightest statistic is above its threshold (< 1 fails).
    score = np.minimum.reduce([c / max(f.min_std, 1e-12), f.max_saturated / np.maximum(sat, 1e-12),
                               sharp / max(f.min_sharpness, 1e-12)])  # fmt: skip
    return ok, score, reasons


def decide(scores: pd.DataFrame, keys: list[str], f: FilterSettings) -> pd.DataFrame:
    """Per-stage decision / score / reason columns and the final ``decision`` (kept | rejected),
    ``rejected_at`` and ``reason``. Rows must be in a deterministic order (the asset sorts by key):
    near-duplicates keep the first of a group."""
    n = len(scores)
    alive = np.ones(n, dtype=bool)
    out: dict[str, Any] = {"key": keys}
    rejected_at = np.array([""] * n, dtype=object)
    reason = np.array([""] * n, dtype=object)
    for stage, fn in (("crowding", _stage_crowding), ("pose", _stage_pose), ("quality", _stage_quality)):
        ok, score, why = fn(scores, f)
        out[f"{stage}_decision"] = np.where(~alive, "not_reached", np.where(ok, "pass", "reject"))
        out[f"{stage}_score"] = score
        out[f"{stage}_reason"] = np.where(alive & ~ok, np.array(why, dtype=object), "")
        newly = alive & ~ok
        rejected_at[newly], reason[newly] = stage, np.array(why, dtype=object)[newly]
        alive &= ok
    dup_of, nearest = near_duplicates(scores["phash"].to_numpy().view(np.uint64), alive, f.max_hash_distance)
    dup = dup_of >= 0
    out["near_duplicate_decision"] = np.where(~alive, "not_reached", np.where(dup, "reject", "pass"))
    out["near_duplicate_score"] = nearest.astype(np.float64)
    why = np.array([f"near-duplicate of {keys[j]} (hash distance {d})" if j >= 0 else ""
                    for j, d in zip(dup_of, nearest, strict=True)], dtype=object)  # fmt: skip
    out["near_duplicate_reason"] = why
    rejected_at[dup], reason[dup] = "near_duplicate", why[dup]
    alive &= ~dup
    out["decision"] = np.where(alive, "kept", "rejected")
    out["rejected_at"] = rejected_at
    out["reason"] = reason
    return pd.DataFrame(out)


def stage_counts(decisions: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per stage: how many samples reached it, passed, were rejected."""
    return {
        s: {"reached": int((decisions[f"{s}_decision"] != "not_reached").sum()),
            "passed": int((decisions[f"{s}_decision"] == "pass").sum()),
            "rejected": int((decisions[f"{s}_decision"] == "reject").sum())}
        for s in STAGES
    }  # fmt: skip
