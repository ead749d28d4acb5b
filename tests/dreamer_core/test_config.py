"""params.yaml: both profiles validate; every bad value is reported by its key."""

import copy

import pytest
import yaml

from dreamer_core.config import load_params, params_path
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
    params = load_params(profile=profile)
    assert params["profile"] == profile and params["pose_bank"]["num_poses"] >= 2


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("PD_PROFILE", "full")
    assert load_params()["profile"] == "full"
    monkeypatch.setenv("PD_PROFILE", "huge")
    with pytest.raises(ConfigError, match="PD_PROFILE.*huge"):
        load_params()


BAD = [
    (("pose_bank", "num_poses"), -3, "tiny.pose_bank.num_poses must be an integer"),
    (("pose_bank", "num_poses"), "many", "tiny.pose_bank.num_poses"),
    (("pose_bank", "noise_deg"), float("nan"), "tiny.pose_bank.noise_deg"),
    (("pose_bank", "family_weights"), {"standing": -1.0}, "tiny.pose_bank.family_weights"),
    (("pose_bank", "family_weights"), {"flying": 1.0}, "tiny.pose_bank.family_weights"),
    (("pose_bank", "age_range"), [60, 20], "tiny.pose_bank.age_range"),
    (("pose_bank", "amass_on_error"), "ignore", "tiny.pose_bank.amass_on_error must be one of"),
    (("body_model", "name"), "smpl-x", "tiny.body_model.name"),
    (("seed",), 1.5, "tiny.seed"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[".".join(b[0]) + "=" + repr(b[1]) for b in BAD])
def test_bad_values_name_their_key(tmp_path, raw, path, value, message):
    data = copy.deepcopy(raw)
    node = data["tiny"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_params(write(tmp_path, data), profile="tiny")


def test_heldout_controls_within_their_split(tmp_path, raw):
    """The DPO gain is measured on exactly heldout_controls renders: asking for more than the split holds fails."""
    data = copy.deepcopy(raw)
    data["tiny"]["dpo"]["heldout_controls"] = data["tiny"]["reference_renders"]["num_test"] + 1
    with pytest.raises(ConfigError, match=r"tiny: dpo\.heldout_controls must not exceed"):
        load_params(write(tmp_path, data), profile="tiny")
    data["tiny"]["dpo"]["heldout_controls"] = data["tiny"]["reference_renders"]["num_test"]
    assert (
        load_params(write(tmp_path, data), profile="tiny")["dpo"]["heldout_controls"]
        == data["tiny"]["reference_renders"]["num_test"]
    )


def test_unknown_and_missing_keys(tmp_path, raw):
    data = copy.deepcopy(raw)
    data["tiny"]["pose_bank"]["num_pose"] = 10
    with pytest.raises(ConfigError, match=r"unknown keys \['num_pose'\]"):
        load_params(write(tmp_path, data), profile="tiny")
    data = copy.deepcopy(raw)
    del data["tiny"]["pose_bank"]["noise_deg"]
    with pytest.raises(ConfigError, match=r"missing keys \['noise_deg'\]"):
        load_params(write(tmp_path, data), profile="tiny")


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("tiny: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
