"""The run configs (what the launchpad edits) are derived from the library's settings sections:
the same fields, the active profile's values as defaults, the sections' doc lines as descriptions;
a bad launchpad value is refused with its key."""

from __future__ import annotations

import dataclasses

import pytest

from dreamer_core.config import BodyModelSettings
from dreamer_core.errors import ConfigError
from orchestration import settings as run_configs
from orchestration.resources import BodyModelResource
from orchestration.settings import SETTINGS, DPOConfig, ReferenceRendersConfig, RoundGenerationsConfig

CONFIGS = [name for name in dir(run_configs) if name.endswith("Config") and name != "Config"]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_run_config_builds_its_sections_from_the_profile(name):
    cls = getattr(run_configs, name)
    built = cls().settings()
    assert built and all(section == SETTINGS.section(key) for key, section in built.items()), name
    fields = set(cls.model_fields) - {"seed", "device"}
    offered = {f.name for key in built for f in dataclasses.fields(type(built[key]))}
    assert fields <= offered and cls.model_fields["seed"].default == SETTINGS.seed
    assert cls.model_fields["device"].default == SETTINGS.device and cls().torch_device().type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="device must be one of"):
        cls(device="gpu").torch_device()
    for key in built:
        for f in dataclasses.fields(type(built[key])):
            if f.name in fields:
                assert cls.model_fields[f.name].description == f.metadata["doc"], (name, f.name)


def test_graph_shaping_keys_are_not_offered_per_run():
    assert "initial_shards" not in RoundGenerationsConfig.model_fields
    assert RoundGenerationsConfig().settings()["round_generations"].initial_shards == (
        SETTINGS.round_generations.initial_shards
    )


def test_a_bad_launchpad_value_names_its_key():
    with pytest.raises(ConfigError, match=r"run_config\.dpo\.num_candidates must be an integer in \[2, 64\], got 1"):
        DPOConfig(num_candidates=1).settings()
    with pytest.raises(ConfigError, match=r"run_config\.reference_renders: multiview_heldout must be smaller"):
        ReferenceRendersConfig(multiview_heldout=10_000).settings()


def test_the_body_model_resource_has_the_section_fields():
    section = {f.name for f in dataclasses.fields(BodyModelSettings)}
    assert set(BodyModelResource.model_fields) == section - {"allow_pickle_models"}  # the deployment's alone
    assert BodyModelResource().settings() == SETTINGS.body_model
    with pytest.raises(ConfigError, match=r"resources\.body_model\.name must be one of"):
        BodyModelResource(name="smplh").settings()
