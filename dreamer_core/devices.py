"""The one ``device`` setting (``auto | cpu | cuda | cuda:N``) and what every heavy step derives from it.

Steps never pick a device themselves: they receive the resolved ``torch.device``, so a profile (or
one run's config) moves the whole pipeline, and the CPU path a laptop or CI runs is the same code
with another device. ``auto`` takes the GPU of this process when there is one (under torchrun the
one ``LOCAL_RANK`` names), otherwise the CPU.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import torch

from dreamer_core.errors import ConfigError

CHOICES = "auto | cpu | cuda | cuda:N"
_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def valid_device(value: object) -> bool:
    """Whether ``value`` is spelled as a device setting (whether that GPU exists is checked on use)."""
    return isinstance(value, str) and bool(_PATTERN.match(value))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def resolve_device(value: str, rank: int | None = None) -> torch.device:
    """The device a step runs on. ``cuda`` (and ``auto`` with a GPU) means this process's GPU:
    ``LOCAL_RANK`` under torchrun, else the first; ``cuda:N`` is that GPU and must exist."""
    if not valid_device(value):
        raise ConfigError(f"device must be one of {CHOICES}, got {value!r}")
    if value == "cpu" or (value == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {value!r}: this machine has no CUDA GPU visible to torch; use auto or cpu")
    index = int(value.split(":")[1]) if ":" in value else (local_rank() if rank is None else rank)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device {value!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return torch.device("cuda", index)


def warp_device(device: torch.device) -> str:
    """The same device as Warp names it (``cpu`` or ``cuda:N``)."""
    return "cpu" if device.type == "cpu" else f"cuda:{device.index or 0}"


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast on CUDA (tensor cores, half the activation memory); nothing on the CPU, where
    the tested float32 path stays bit-stable."""
    if enabled and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield
