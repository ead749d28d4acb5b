"""The HMR training entry point refuses a bad spec with a message naming what is wrong."""

from __future__ import annotations

import pytest

from dreamer_core.errors import ConfigError, PipelineInputError
from orchestration.train_hmr import validate_spec


def _spec(tmp_path, **changes):
    spec = {
        "train_set": "rendered",
        "sources": [str(tmp_path)],
        "out": str(tmp_path / "out"),
        "image_size": 32,
        "model": {"backbone": "cnn", "width": 8},
        "training": {"steps": 2},
        "body_model": {"name": "anny"},
    }
    return {**spec, **changes}


def test_valid_spec_passes(tmp_path):
    validate_spec(_spec(tmp_path))


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"model": {"backbone": "cnn", "widht": 8}}, ConfigError, r"unknown model keys \['widht'\]"),
        ({"training": {"stpes": 2}}, ConfigError, r"unknown training keys \['stpes'\]"),
        ({"sources": ["/nonexistent/shards"]}, PipelineInputError, "/nonexistent/shards does not exist"),
    ],
)
def test_bad_spec_is_named(tmp_path, changes, error, match):
    with pytest.raises(error, match=match):
        validate_spec(_spec(tmp_path, **changes))


def test_missing_keys_are_listed(tmp_path):
    spec = _spec(tmp_path)
    del spec["out"], spec["training"]
    with pytest.raises(ConfigError, match=r"missing \['out', 'training'\]"):
        validate_spec(spec)
