"""One profile's settings: the library defaults overlaid with what ``params.yaml`` changes for it.

``params.yaml`` lists, per profile, only the values that differ from the defaults declared on the
section classes (the defaults are the full-scale pipeline; ``tiny`` shrinks it to run on a
laptop). ``load_settings`` checks every value where it enters, with a message naming its key.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dreamer_core.config.avatars import BenchmarkSettings, GSTSettings, HMRSettings
from dreamer_core.config.bodies import BodyModelSettings, PoseBankSettings
from dreamer_core.config.fields import Section, integer
from dreamer_core.config.generation import DPOSettings, GeneratorSettings, PoseDetectorSettings
from dreamer_core.config.mining import FilterSettings, HardnessSettings, RoundGenerationsSettings
from dreamer_core.config.renders import ControlRendersSettings, ReferenceRendersSettings, RenderSettings
from dreamer_core.devices import CHOICES as DEVICE_CHOICES
from dreamer_core.devices import valid_device
from dreamer_core.errors import ConfigError

PROFILES = ("tiny", "full")
PROFILE_ENV = "PD_PROFILE"
PARAMS_ENV = "PD_PARAMS"
SEED = integer(0, 2**31 - 1)

SECTIONS: tuple[type[Section], ...] = (
    BodyModelSettings, PoseBankSettings, RenderSettings, ReferenceRendersSettings, ControlRendersSettings,
    PoseDetectorSettings, GeneratorSettings, DPOSettings, RoundGenerationsSettings, HardnessSettings,
    FilterSettings, HMRSettings, BenchmarkSettings, GSTSettings,
)  # fmt: skip
BY_KEY: dict[str, type[Section]] = {cls.key: cls for cls in SECTIONS}
GLOBALS = ("seed", "device")  # profile keys that are not sections


@dataclass(frozen=True)
class PipelineSettings:
    """Every section of one profile, plus the global seed from which every random stream derives
    and the device every heavy step runs on (``dreamer_core.devices``: how to run, not what is
    made, so it enters no fingerprint or DVC stage)."""

    profile: str = "full"
    seed: int = 1234
    device: str = "auto"
    body_model: BodyModelSettings = dataclasses.field(default_factory=BodyModelSettings)
    pose_bank: PoseBankSettings = dataclasses.field(default_factory=PoseBankSettings)
    render: RenderSettings = dataclasses.field(default_factory=RenderSettings)
    reference_renders: ReferenceRendersSettings = dataclasses.field(default_factory=ReferenceRendersSettings)
    control_renders: ControlRendersSettings = dataclasses.field(default_factory=ControlRendersSettings)
    pose_detector: PoseDetectorSettings = dataclasses.field(default_factory=PoseDetectorSettings)
    generator: GeneratorSettings = dataclasses.field(default_factory=GeneratorSettings)
    dpo: DPOSettings = dataclasses.field(default_factory=DPOSettings)
    round_generations: RoundGenerationsSettings = dataclasses.field(default_factory=RoundGenerationsSettings)
    hardness_model: HardnessSettings = dataclasses.field(default_factory=HardnessSettings)
    filtered_dataset: FilterSettings = dataclasses.field(default_factory=FilterSettings)
    hmr: HMRSettings = dataclasses.field(default_factory=HMRSettings)
    benchmark_scores: BenchmarkSettings = dataclasses.field(default_factory=BenchmarkSettings)
    gst: GSTSettings = dataclasses.field(default_factory=GSTSettings)

    def __post_init__(self) -> None:
        if not SEED.ok(self.seed):
            raise ConfigError(f"{self.profile}.seed must be {SEED.expect}, got {self.seed!r}")
        if not valid_device(self.device):
            raise ConfigError(f"{self.profile}.device must be one of {DEVICE_CHOICES}, got {self.device!r}")
        split = self.dpo.heldout_split
        if self.dpo.heldout_controls > getattr(self.reference_renders, f"num_{split}"):
            raise ConfigError(
                f"{self.profile}: dpo.heldout_controls must not exceed reference_renders.num_{split} "
                "(dpo.heldout_split): the DPO gain would be measured on fewer controls than asked"
            )

    def section(self, key: str) -> Section:
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        sections = {cls.key: self.section(cls.key).to_dict() for cls in SECTIONS}
        return {"seed": self.seed, "device": self.device, **sections}

    @classmethod
    def from_overrides(cls, overrides: Any, profile: str) -> PipelineSettings:
        """The defaults with ``overrides`` (``{section: {key: value}}`` and ``seed``) applied."""
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"{profile}: must be a mapping of sections, got {type(overrides).__name__}")
        unknown = sorted(set(overrides) - set(BY_KEY) - set(GLOBALS))
        if unknown:
            raise ConfigError(f"{profile}: unknown sections {unknown}; allowed are {sorted([*BY_KEY, *GLOBALS])}")
        values: dict[str, Any] = {
            k: BY_KEY[k].from_mapping(v, f"{profile}.") for k, v in overrides.items() if k not in GLOBALS
        }
        globals_ = {k: overrides[k] for k in GLOBALS if k in overrides}
        return cls(profile=profile, **globals_, **values)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def params_path() -> Path:
    return Path(os.environ.get(PARAMS_ENV, repo_root() / "params.yaml"))


def read_params(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The raw ``params.yaml`` mapping (``profile`` and one mapping of overrides per profile)."""
    p = Path(path) if path else params_path()
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: params file not found (set {PARAMS_ENV} or run from the repository)") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{p}: must hold a mapping with 'profile' and the profiles {list(PROFILES)}")
    unknown = sorted(set(raw) - {"profile", *PROFILES})
    if unknown:
        raise ConfigError(f"{p}: unknown top-level keys {unknown}; allowed are profile, {', '.join(PROFILES)}")
    return dict(raw)


def active_profile(raw: Mapping[str, Any], profile: str | None = None) -> str:
    name = profile or os.environ.get(PROFILE_ENV) or raw.get("profile", "tiny")
    if name not in PROFILES:
        source = PROFILE_ENV if os.environ.get(PROFILE_ENV) and not profile else "profile"
        raise ConfigError(f"{source}: must be one of {list(PROFILES)}, got {name!r}")
    return name


def load_settings(path: str | os.PathLike[str] | None = None, profile: str | None = None) -> PipelineSettings:
    """The checked settings of one profile (``PD_PROFILE`` or the file's ``profile`` by default)."""
    raw = read_params(path)
    name = active_profile(raw, profile)
    return PipelineSettings.from_overrides(raw.get(name) or {}, name)
