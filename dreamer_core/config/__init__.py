"""Every setting of the pipeline, owned by the library: one frozen dataclass per ``params.yaml``
section (its fields carry type, default, check and the line a user reads), and the loader that
applies a profile's overrides from ``params.yaml`` to those defaults."""

from dreamer_core.config.avatars import BenchmarkSettings, GSTSettings, HMRSettings
from dreamer_core.config.bodies import BodyModelSettings, PoseBankSettings
from dreamer_core.config.fields import Section
from dreamer_core.config.generation import DPOSettings, GeneratorSettings, PoseDetectorSettings
from dreamer_core.config.mining import FilterSettings, HardnessSettings, RoundGenerationsSettings
from dreamer_core.config.profile import (
    BY_KEY,
    PARAMS_ENV,
    PROFILE_ENV,
    PROFILES,
    SECTIONS,
    PipelineSettings,
    load_settings,
    params_path,
    read_params,
    repo_root,
)
from dreamer_core.config.renders import ControlRendersSettings, ReferenceRendersSettings, RenderSettings

__all__ = [
    "BY_KEY", "PARAMS_ENV", "PROFILES", "PROFILE_ENV", "SECTIONS", "BenchmarkSettings", "BodyModelSettings",
    "ControlRendersSettings", "DPOSettings", "FilterSettings", "GSTSettings", "GeneratorSettings", "HMRSettings",
    "HardnessSettings", "PipelineSettings", "PoseBankSettings", "PoseDetectorSettings", "ReferenceRendersSettings",
    "RenderSettings", "RoundGenerationsSettings", "Section", "load_settings", "params_path", "read_params",
    "repo_root",
]  # fmt: skip
