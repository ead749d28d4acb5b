"""params.yaml and the settings sections: both profiles load, every bad value is reported by its
key, and every setting is defined once (a field with a type, a default, a check and a doc line)."""

import copy
import dataclasses

import pytest
import yaml

from dreamer_core.config import SECTIONS, BodyModelSettings, PipelineSettings, load_settings, params_path
from dreamer_core.errors import ConfigError


@pytest.fixture()
def raw():
    return yaml.safe_load(params_path().read_text())


def write(tmp_path, data):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("profile", ["tiny", "full"])
def test_profiles_validate(profile):
    settings = load_settings(profile=profile)
    assert settings.profile == profile and settings.pose_bank.num_poses >= 2


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("PD_PROFILE", "full")
    assert load_settings().profile == "full"
    monkeypatch.setenv("PD_PROFILE", "huge")
    with pytest.raises(ConfigError, match="PD_PROFILE.*huge"):
        load_settings()


BAD = [
    (("pose_bank", "num_poses"), -3, "tiny.pose_bank.num_poses must be an integer in [2, 10000000], got -3"),
    (("pose_bank", "num_poses"), "many", "tiny.pose_bank.num_poses"),
    (("pose_bank", "noise_deg"), float("nan"), "tiny.pose_bank.noise_deg"),
    (("pose_bank", "family_weights"), {"standing": -1.0}, "tiny.pose_bank.family_weights"),
    (("pose_bank", "family_weights"), {"flying": 1.0}, "tiny.pose_bank.family_weights"),
    (("pose_bank", "age_range"), [60, 20], "tiny.pose_bank.age_range"),
    (("pose_bank", "amass_on_error"), "ignore", "tiny.pose_bank.amass_on_error must be one of"),
    (("body_model", "name"), "smpl-x", "tiny.body_model.name"),
    (("hmr", "heads"), 5, "tiny.hmr: dim must be a multiple of heads"),
    (("seed",), 1.5, "tiny.seed"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[".".join(b[0]) + "=" + repr(b[1]) for b in BAD])
def test_bad_values_name_their_key(tmp_path, raw, path, value, message):
    data = copy.deepcopy(raw)
    node = data["tiny"]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
        load_settings(write(tmp_path, data), profile="tiny")


def test_a_message_says_what_the_setting_is():
    with pytest.raises(ConfigError, match=r"body_model\.name must be one of .*got 'smpl-x' \(anny \| smpl \| smplx\)"):
        BodyModelSettings(name="smpl-x")


def test_heldout_controls_within_their_split(tmp_path, raw):
    """The DPO gain is measured on exactly heldout_controls renders: asking for more than the split holds fails."""
    data = copy.deepcopy(raw)
    data["tiny"]["dpo"]["heldout_controls"] = data["tiny"]["reference_renders"]["num_test"] + 1
    with pytest.raises(ConfigError, match=r"tiny: dpo\.heldout_controls must not exceed"):
        load_settings(write(tmp_path, data), profile="tiny")
    data["tiny"]["dpo"]["heldout_controls"] = data["tiny"]["reference_renders"]["num_test"]
    assert (
        load_settings(write(tmp_path, data), profile="tiny").dpo.heldout_controls
        == (data["tiny"]["reference_renders"]["num_test"])
    )


def test_unknown_keys_and_sections(tmp_path, raw):
    data = copy.deepcopy(raw)
    data["tiny"]["pose_bank"]["num_pose"] = 10
    with pytest.raises(ConfigError, match=r"tiny\.pose_bank: unknown keys \['num_pose'\]; allowed are"):
        load_settings(write(tmp_path, data), profile="tiny")
    data = copy.deepcopy(raw)
    data["tiny"]["posebank"] = {"num_poses": 10}
    with pytest.raises(ConfigError, match=r"tiny: unknown sections \['posebank'\]"):
        load_settings(write(tmp_path, data), profile="tiny")


def test_an_omitted_key_keeps_its_default(tmp_path, raw):
    data = copy.deepcopy(raw)
    del data["tiny"]["pose_bank"]["noise_deg"]
    assert (
        load_settings(write(tmp_path, data), profile="tiny").pose_bank.noise_deg
        == PipelineSettings().pose_bank.noise_deg
    )


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("tiny: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(tmp_path / "bad.yaml")


# -- every setting defined once -------------------------------------------------------------------


def test_every_params_key_is_a_field_and_differs_from_its_default(raw):
    """A profile lists only what it changes: a key without a field is a typo, and a key set to its
    default is a second definition of that default."""
    defaults = PipelineSettings()
    by_key = {cls.key: cls for cls in SECTIONS}
    for profile in ("tiny", "full"):
        for section, values in (raw.get(profile) or {}).items():
            if section == "seed":
                assert values != defaults.seed, f"{profile}.seed repeats the default"
                continue
            assert section in by_key, f"{profile}.{section}: no settings section of that name"
            fields = {f.name for f in dataclasses.fields(by_key[section])}
            for key, value in values.items():
                assert key in fields, f"{profile}.{section}.{key}: no field of that name"
                default = defaults.section(section).to_dict()[key]
                assert value != default, f"{profile}.{section}.{key}: {value!r} is the default; delete the line"


def test_no_key_is_set_to_the_same_value_in_every_profile(raw):
    """A value shared by every profile belongs in the defaults, once."""
    tiny, full = raw.get("tiny") or {}, raw.get("full") or {}
    shared = [f"{s}.{k}" for s in tiny for k in (tiny[s] if isinstance(tiny[s], dict) else {})
              if isinstance(full.get(s), dict) and k in full[s] and full[s][k] == tiny[s][k]]  # fmt: skip
    assert not shared, f"set to the same value in tiny and full (make it the default): {shared}"


def test_every_field_has_a_doc_line_a_check_and_a_default():
    for cls in SECTIONS:
        assert cls.key and cls.__doc__, cls
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), f"{cls.key}.{f.name} has no doc line"
            assert f.metadata.get("check"), f"{cls.key}.{f.name} has no check"
            assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        cls()  # the defaults pass their own checks


def test_sections_are_frozen():
    s = PipelineSettings().dpo
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.steps = 3  # type: ignore[misc]


@pytest.mark.parametrize("profile", ["tiny", "full"])
def test_the_listing_reads_back_as_the_settings(profile):
    from dreamer_core.config.listing import settings_yaml

    settings = load_settings(profile=profile)
    assert yaml.safe_load(settings_yaml(settings)) == settings.to_dict()


def test_training_specs_take_their_defaults_from_the_sections():
    """The library's run specs hold no second default for a setting: a field named like a section
    field defaults to the section's value (and the pipeline passes every one of them)."""
    from avatar_core.gst.train import GSTTraining
    from dreamer_core.config import DPOSettings, GeneratorSettings, GSTSettings, HMRSettings
    from dreamer_core.dpo.pairs import PairRule
    from dreamer_core.dpo.train import DPOTraining
    from dreamer_core.generate.train import GeneratorTraining
    from dreamer_core.hmr.train import HMRTraining

    pairs = [(HMRTraining, HMRSettings), (GSTTraining, GSTSettings), (GeneratorTraining, GeneratorSettings),
             (DPOTraining, DPOSettings), (PairRule, DPOSettings)]  # fmt: skip
    for spec, section in pairs:
        defaults = {f.name: f.default for f in dataclasses.fields(section)}
        shared = [f for f in dataclasses.fields(spec) if f.name in defaults and f.default is not dataclasses.MISSING]
        assert shared, spec
        for f in shared:
            assert f.default == defaults[f.name], (
                f"{spec.__name__}.{f.name} = {f.default!r}, {section.key}: {defaults[f.name]!r}"
            )
    assert set(HMRSettings().training_fields(0)) <= {f.name for f in dataclasses.fields(HMRTraining)}
    assert set(GSTSettings().training_fields(0)) <= {f.name for f in dataclasses.fields(GSTTraining)}
