"""A profile's effective settings as commented YAML: what a run uses, each line with its doc, and
``[<profile>]`` on the values the profile changes (``python -m orchestration.cli settings``)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from dreamer_core.config.profile import SECTIONS, PipelineSettings, read_params
from dreamer_core.devices import CHOICES


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):  # YAML 1.1 reads 1e-05 as a string: it needs the dot (1.0e-05)
        mantissa, _, exponent = repr(v).partition("e")
        return mantissa + ("" if "." in mantissa else ".0") + (f"e{exponent}" if exponent else "")
    return json.dumps(v) if isinstance(v, (str, list, dict)) else repr(v)


DEVICE_DOC = f"{CHOICES}: where every heavy step runs (auto = this process's GPU if any, else the CPU)"


def settings_yaml(settings: PipelineSettings) -> str:
    """YAML that ``yaml.safe_load`` reads back into ``settings.to_dict()``."""
    changed = read_params().get(settings.profile) or {}
    lines = [f"# profile {settings.profile}: the defaults, with the values marked [{settings.profile}] changed by "
             "params.yaml", f"seed: {settings.seed}",
             f"device: {settings.device}  # {DEVICE_DOC}"]  # fmt: skip
    for cls in SECTIONS:
        lines.append(f"{cls.key}:  # {(cls.__doc__ or '').splitlines()[0]}")
        values = settings.section(cls.key).to_dict()
        for f in dataclasses.fields(cls):
            mark = f" [{settings.profile}]" if f.name in (changed.get(cls.key) or {}) else ""
            lines.append(f"  {f.name}: {_value(values[f.name])}  #{mark} {f.metadata['doc']}")
    return "\n".join(lines) + "\n"
