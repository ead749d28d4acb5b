"""Run-config classes whose defaults come from params.yaml (the active profile).

The launchpad in the web UI shows these defaults; whatever a user changes there is validated
by the same schema as params.yaml, with an error naming the key.
"""

from typing import Any

import dagster as dg

from dreamer_core.config import load_params, validate_section
from orchestration.env import apply_defaults

PARAMS: dict[str, Any] = load_params()
apply_defaults(PARAMS["profile"])
_PB = PARAMS["pose_bank"]


class PoseBankConfig(dg.Config):
    """How many poses, from which sources, and how diverse (see params.yaml: pose_bank)."""

    num_poses: int = _PB["num_poses"]
    candidate_factor: float = _PB["candidate_factor"]
    source_weights: dict[str, float] = _PB["source_weights"]
    family_weights: dict[str, float] = _PB["family_weights"]
    noise_deg: float = _PB["noise_deg"]
    age_range: list[float] = _PB["age_range"]
    betas_range: float = _PB["betas_range"]
    amass_path: str = _PB["amass_path"]
    amass_stride: int = _PB["amass_stride"]
    amass_on_error: str = _PB["amass_on_error"]
    amass_zup: bool = _PB["amass_zup"]
    batch_size: int = _PB["batch_size"]
    seed: int = PARAMS["seed"]

    def settings(self) -> dict[str, Any]:
        values = self.model_dump()
        values.pop("seed")
        return validate_section("pose_bank", values, prefix="run_config.")
