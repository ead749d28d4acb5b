"""The device setting: spelled one way, checked where it enters, resolved to this process's device."""

from __future__ import annotations

import pytest
import torch

from dreamer_core.config import load_settings
from dreamer_core.devices import autocast, resolve_device, valid_device, warp_device
from dreamer_core.errors import ConfigError


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:7"])
def test_valid_spellings(value):
    assert valid_device(value)


@pytest.mark.parametrize("value", ["gpu", "CUDA", "cuda:", "cuda:x", "mps", "", 0, None])
def test_other_spellings_are_refused_with_the_choices(value):
    assert not valid_device(value)
    with pytest.raises(ConfigError, match=r"auto \| cpu \| cuda \| cuda:N"):
        resolve_device(value)  # type: ignore[arg-type]


def test_auto_and_cpu_resolve_here():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert warp_device(torch.device("cpu")) == "cpu" and warp_device(torch.device("cuda", 2)) == "cuda:2"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine has the GPU this asks for")
def test_asking_for_a_gpu_without_one_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_autocast_leaves_cpu_float32():
    x = torch.randn(4, 4)
    with autocast(torch.device("cpu")):
        assert (x @ x).dtype == torch.float32


def test_profiles_take_device_and_check_it(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("profile: tiny\ntiny:\n  device: cpu\nfull: {}\n")
    assert load_settings(path).device == "cpu" and load_settings(path, "full").device == "auto"
    path.write_text("profile: tiny\ntiny:\n  device: gpu0\nfull: {}\n")
    with pytest.raises(ConfigError, match="tiny.device must be one of"):
        load_settings(path)
