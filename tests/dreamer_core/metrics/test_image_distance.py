"""FID / KID never report a made-up number: without weights (or the package) the answer says why."""

from __future__ import annotations

import importlib.util

import numpy as np

from dreamer_core.metrics.image_distance import inception_distances, unavailable


def test_reasons_name_the_missing_piece(tmp_path):
    assert "inception_weights is not set" in unavailable("")
    assert f"no Inception weights at {tmp_path / 'x.pth'}" in unavailable(str(tmp_path / "x.pth"))
    weights = tmp_path / "pt_inception.pth"
    weights.write_bytes(b"not checked before torchmetrics is found")
    if importlib.util.find_spec("torchmetrics") is None:
        assert "torchmetrics[image] is not installed" in unavailable(str(weights))
    images = np.zeros((2, 8, 8, 3), np.uint8)
    distances, why = inception_distances(images, images, "")
    assert distances is None and why.startswith("unavailable")
