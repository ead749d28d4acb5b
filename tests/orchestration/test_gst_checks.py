"""gst_beats_baselines' verdict: GST must beat both baselines on the headline (masked) PSNR and SSIM;
the full-image numbers, mostly flat background, are reported but do not decide."""

import pandas as pd

from orchestration.assets.gst import GST_MODELS, GST_TEST, IMAGE_METRICS, gst_checks_metadata


def table(values: dict[tuple[str, str], float]) -> pd.DataFrame:
    base = {"psnr_mask": 12.0, "ssim_mask": 0.5, "psnr": 22.0, "ssim": 0.8}
    rows = [{"model": m, "train_set": "multiview", "test_set": GST_TEST, "metric": k,
             "value": values.get((m, k), base[k])} for m in GST_MODELS for k in IMAGE_METRICS]  # fmt: skip
    rows.append({"model": "hmr", "train_set": "mixed", "test_set": GST_TEST, "metric": "mpjpe", "value": 300.0})
    return pd.DataFrame(rows)


def test_masked_metrics_decide_and_every_score_is_reported():
    passed, meta = gst_checks_metadata(table({("gst", "psnr_mask"): 13.0, ("gst", "ssim_mask"): 0.6,
                                              ("flat_mesh", "psnr"): 25.0}))  # fmt: skip
    assert passed and meta["missed"] == "none"  # lower full-image PSNR than the flat mesh: not the headline
    assert meta["flat_mesh.psnr"] == 25.0 and len(meta) == len(GST_MODELS) * len(IMAGE_METRICS) + 1
    passed, meta = gst_checks_metadata(table({("gst", "psnr_mask"): 13.0, ("gst", "psnr"): 30.0,
                                              ("flat_mesh", "ssim_mask"): 0.7}))  # fmt: skip
    assert not passed and meta["missed"] == "ssim_mask"
