"""One small real pose bank for the mining tests (building it is the slow part, so it is shared)."""

from __future__ import annotations

import pytest

from tests.helpers.renders import small_bank


@pytest.fixture(scope="session")
def bank(anny_body):
    return small_bank(anny_body, 160, seed=3)
