"""Helpers shared by asset modules: failures from bad input, previews in metadata, hashes of inputs,
progress logs, parquet and PNG outputs."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from dreamer_core.config import Section
from dreamer_core.datasets.reference_plan import reference_version
from dreamer_core.errors import PipelineInputError
from dreamer_core.io import atomic_path, write_bytes_atomic


def input_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bad user input (a PipelineInputError from the libraries) fails the step as a ``dg.Failure``:
    the web UI and the CLI then show its message (which names the input and the fix), not a stack
    trace through Dagster's internals."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineInputError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

    return wrapper


def asset_step(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What every asset function runs inside: bad input as a ``dg.Failure`` (``input_errors``), and
    the run lock of what it writes (the asset, or the asset's partition): two runs launched
    together never interleave their writes; the second fails with a message naming the first."""
    checked = input_errors(fn)

    @functools.wraps(fn)
    def wrapper(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Any:
        from orchestration.resources.storage import StorageResource

        name = context.asset_key.to_user_string()
        if context.has_partition_key:
            name = f"{name}.{context.partition_key}"
        storage = kwargs.get("storage") or StorageResource()
        with storage.run_lock(name, context.run_id, float(os.environ.get("PD_RUN_LOCK_WAIT_S", "10"))):
            return checked(context, *args, **kwargs)

    return wrapper


def preview_md(png: bytes, alt: str = "preview") -> dg.MetadataValue:
    """A PNG embedded in markdown, which the asset page in the web UI renders inline."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def _section_values(obj: Any) -> Any:
    if isinstance(obj, Section):
        return obj.to_dict()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def settings_hash(settings: dict[str, Any]) -> str:
    """Short hash of settings (sections as their plain values): the params part of a run's input hashes."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=_section_values).encode()).hexdigest()[:16]


def dvc_meta(params: list[str]) -> dict[str, Any]:
    """Asset metadata from which dvc.yaml is generated: the params sections the asset reads (its code
    dependencies come from the import graph of its module: ``orchestration.code_deps``)."""
    return {"dvc/params": params}


def file_hash(storage: Any, asset: str, name: str) -> str:
    """Hash of an upstream asset's JSON file (its config or summary): tags MLflow runs with the
    version of their inputs."""
    path = storage.asset_dir(asset) / name
    return settings_hash(json.loads(path.read_text())) if path.exists() else "missing"


def input_version(storage: Any, asset: str) -> str:
    """The version of an upstream asset a run is tagged with: the hash of its summary, or for the
    partitioned ``reference_renders`` the hash of its partitions' commit records, which fails
    (naming them) while a partition is missing, so no run reads part of the renders."""
    if asset == "reference_renders":
        return reference_version(storage.asset_dir(asset))
    return file_hash(storage, asset, "summary.json")


def log_progress(context: dg.AssetExecutionContext, what: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that logs to Dagster at most every 10 s."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 10 or done == total:
            last[0] = time.perf_counter()
            context.log.info(f"{what}: {done}/{total}")

    return report


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def publish_png(out: Path, name: str, png: bytes, run: Any) -> None:
    """A preview next to the asset's files and in its MLflow run."""
    write_bytes_atomic(out / name, png)
    run.log_image_bytes(name, png)
