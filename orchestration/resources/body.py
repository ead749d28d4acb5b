"""The body model as a resource (anny by default; SMPL/SMPL-X from a user model folder)."""

from __future__ import annotations

import functools
import json

import dagster as dg

from dreamer_core.bodies import BodyModel, load_body_model
from dreamer_core.config import validate_section
from orchestration.settings import PARAMS

_BM = PARAMS["body_model"]


@functools.lru_cache(maxsize=2)
def _load(settings_json: str) -> BodyModel:
    return load_body_model(json.loads(settings_json))


class BodyModelResource(dg.ConfigurableResource):
    name: str = _BM["name"]
    model_dir: str = _BM["model_dir"]
    gender: str = _BM["gender"]
    num_betas: int = _BM["num_betas"]
    allow_pickle_models: bool = _BM["allow_pickle_models"]

    def settings(self) -> dict:
        return validate_section("body_model", self.model_dump(), prefix="resources.body_model.")

    def load(self) -> BodyModel:
        """One instance per process: anny construction costs ~0.5 s even with a warm cache."""
        return _load(json.dumps(self.settings(), sort_keys=True))
