"""Filter stages on real renders: quality statistics separate sharp renders from blank, clipped
and blurred versions of them; perceptual hashes find re-encoded copies and not other poses; the
banded near-duplicate search equals brute force; decisions cascade and every sample is counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageFilter

from dreamer_core.config import FilterSettings
from dreamer_core.filters.bedlam import bedlam_arrays
from dreamer_core.filters.card import dataset_card
from dreamer_core.filters.phash import hamming, near_duplicates, phash
from dreamer_core.filters.quality import contrast, grey, saturated_fraction, sharpness
from dreamer_core.filters.stages import STAGES, count_people, decide, score_images, stage_counts
from tests.helpers.oks_cases import BOX_AREAS, MASK_AREAS, ShiftDetector, hand_oks, images, labels, masks_uint8
from tests.helpers.renders import render_poses


@pytest.fixture(scope="module")
def renders(anny_body):
    samples = render_poses(anny_body, 24, seed=5, purpose="filters")
    return np.stack([s.image for s in samples])


def test_quality_statistics_flag_blank_clipped_and_blurred(renders):
    sharp = renders[:8]
    blurred = np.stack([np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(1.5))) for x in sharp])
    blank = np.full_like(sharp, 128)
    clipped = np.repeat(np.where(grey(sharp) > 0.4, 255, 0).astype(np.uint8)[..., None], 3, axis=-1)  # blown out
    g, gb = grey(sharp), grey(blurred)
    assert (contrast(grey(blank)) == 0).all() and (contrast(g) > 0.04).all()
    assert (saturated_fraction(clipped) > 0.5).all() and (saturated_fraction(sharp) < 0.05).all()
    assert (sharpness(gb) < 0.5 * sharpness(g)).all()  # blur removes most Laplacian energy


def test_phash_finds_reencoded_copies_not_other_poses(renders):
    noisy = np.clip(renders.astype(int) + np.random.default_rng(0).integers(-6, 7, renders.shape), 0, 255)
    h, hn = phash(renders), phash(noisy.astype(np.uint8))
    same = np.array([hamming(a, b)[0] for a, b in zip(h, hn, strict=True)])
    cross = np.array([hamming(h[i], h[j])[0] for i in range(len(h)) for j in range(i + 1, len(h))])
    assert np.median(same) <= 2 and same.max() <= 6
    assert np.median(cross) > 12 and (cross > 4).mean() > 0.95


def test_banded_search_equals_brute_force():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**63, 60, dtype=np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, (60, 3)).astype(np.uint64)
    hashes = np.concatenate([base, base ^ flips[:, 0], base ^ flips[:, 0] ^ flips[:, 1] ^ flips[:, 2]])
    rng.shuffle(hashes)
    candidates = rng.random(len(hashes)) > 0.1
    for d in (0, 1, 3, 8):
        dup_of, _ = near_duplicates(hashes, candidates, d)
        accepted: list[int] = []
        expected = np.full(len(hashes), -1)
        for i in np.flatnonzero(candidates):
            dist = hamming(hashes[i], hashes[accepted]) if accepted else np.array([])
            if len(dist) and dist.min() <= d:
                expected[i] = 1
            else:
                accepted.append(int(i))
        assert ((dup_of >= 0) == (expected >= 0)).all(), d


def test_count_people_from_mask_components():
    mask = torch.zeros(3, 32, 32)
    mask[1, 4:14, 4:14] = 1
    for k in range(5):  # five separate people
        mask[2, 2 + 6 * k : 6 + 6 * k, 2:8] = 1
    mask[2, 30, 30] = 1  # a speck below the area threshold
    counts = count_people({"mask": mask, "keypoints": torch.zeros(3, 17, 2)}, min_area=0.01)
    assert counts.tolist() == [0, 1, 5]


def _scores(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame({"people": rng.choice([0, 1, 1, 1, 1, 6], n), "keypoint_score": rng.random(n),
                         "oks": rng.random(n), "contrast": rng.random(n) * 0.2, "saturated": rng.random(n) * 0.6,
                         "sharpness": rng.random(n) * 0.01,
                         "phash": rng.integers(0, 2**62, n).astype(np.int64)})  # fmt: skip


def test_pose_stage_oks_uses_the_label_mask_area():
    """score_images takes the shards' uint8 person masks; OKS uses their pixel count (COCO's
    segmentation area), not the label box: 304 px for the L, whose box is 1600 px."""
    u8 = (images([4.0, 8.0]).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    dx = (u8.reshape(2, -1).mean(1) / 255 - 0.5) * 100  # the offsets the uint8 images still encode
    scores = score_images(ShiftDetector(), u8, labels(), masks_uint8(), min_person_area=0.02)
    want = [hand_oks(d, a) for d, a in zip(dx, MASK_AREAS, strict=True)]
    np.testing.assert_allclose(scores["oks"].to_numpy(), want, rtol=1e-5)
    assert scores["oks"].iloc[0] < hand_oks(dx[0], BOX_AREAS[0]) - 0.2


def test_decisions_cascade_and_count_every_sample():
    f = FilterSettings(min_oks=0.5, min_keypoint_score=0.05)
    s = _scores(400)
    s.loc[50, "phash"] = s.loc[10, "phash"]  # an exact duplicate of an earlier sample
    s.loc[[10, 50], ["people", "keypoint_score", "oks", "contrast", "saturated", "sharpness"]] = [
        1,
        0.9,
        0.9,
        0.1,
        0.0,
        0.005,
    ]
    keys = [f"k{i:04d}" for i in range(len(s))]
    d = decide(s, keys, f)
    counts = stage_counts(d)
    assert counts["crowding"]["reached"] == 400
    for a, b in zip(STAGES, STAGES[1:], strict=False):
        assert counts[b]["reached"] == counts[a]["passed"]
    kept = d.decision == "kept"
    assert kept.sum() + sum(c["rejected"] for c in counts.values()) == 400
    assert d.loc[50, "rejected_at"] == "near_duplicate" and "k0010" in d.loc[50, "reason"]
    assert d.loc[10, "decision"] == "kept"
    ks = s[kept]
    assert ((ks.people >= 1) & (ks.people <= 4) & (ks.oks >= 0.5) & (ks.contrast >= f.min_std)).all()
    crowd = d[((s.people == 6) & (s.keypoint_score >= f.min_keypoint_score)).to_numpy()]
    assert (crowd.rejected_at == "crowding").all() and crowd.reason.str.contains("6 people").all()
    assert (d[d.rejected_at == "pose"].quality_decision == "not_reached").all()
    card = dataset_card(
        pd.concat([d, s.assign(round=np.arange(400) % 2 + 1, predicted_oks=0.5, key=keys)[["round", "oks",
                   "predicted_oks"]]], axis=1),
        counts, FilterSettings(min_oks=0.5), "anny", "tiny", {"OKS": "oks.png"},
    )  # fmt: skip
    assert f"**{int(kept.sum())} kept** of 400" in card and "near_duplicate" in card and "Apache-2.0" in card


def test_bedlam_export_uses_native_translation():
    lab = {"bbox": [10.0, 20.0, 50.0, 100.0], "global_orient_cam": [0.1, 0.2, 0.3],
           "params": {"body_pose": np.zeros((21, 3)).tolist(), "shape": [0.5] * 10},
           "transl_cam": [0.0, 0.2, 5.0], "keypoints_2d": np.ones((25, 3)).tolist(),
           "K": np.eye(3).tolist()}  # fmt: skip
    out = bedlam_arrays([lab], ["a.png"], np.array([[0.0, -0.2, 0.0]]))
    assert out["pose_cam"].shape == (1, 66) and out["shape"].shape == (1, 10)
    np.testing.assert_allclose(out["center"], [[30.0, 60.0]])
    np.testing.assert_allclose(out["scale"], [80.0 / 200.0])
    np.testing.assert_allclose(out["trans_cam"], [[0.0, 0.4, 5.0]], atol=1e-6)
