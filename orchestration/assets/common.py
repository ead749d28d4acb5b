"""Helpers shared by asset modules: previews in metadata, hashes of inputs."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import dagster as dg


def preview_md(png: bytes, alt: str = "preview") -> dg.MetadataValue:
    """A PNG embedded in markdown, which the asset page in the web UI renders inline."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def dvc_meta(code: list[str], params: list[str]) -> dict[str, Any]:
    """Asset metadata from which dvc.yaml is generated (code folders and params sections)."""
    return {"dvc/code_deps": code, "dvc/params": params}
