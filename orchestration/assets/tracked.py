"""The bookkeeping around every asset's work, written once: an MLflow run (named after the asset,
with its params and the hashes of its inputs), the DVC version of the output (tagged on the run
as ``dvc_hash``), and the metadata the asset page shows.

    with AssetRun(context, mlflow, dvc, params, inputs={"pose_bank": file_hash(...)}) as tracked:
        ...  # the work; tracked.run logs metrics, images, artifacts
        return tracked.result(out, (png, "caption"), num_samples=n)
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import dagster as dg

from orchestration.assets.common import preview_md, settings_hash


def asset_name(context: dg.AssetExecutionContext) -> str:
    return context.asset_key.to_user_string()


def versioned(context: dg.AssetExecutionContext, dvc: Any, runs: list[Any]) -> dict[str, Any]:
    """Commit (and push) the asset's DVC stage, ``data/<asset>``; tag every run with its hash."""
    name = asset_name(context)
    versioning = dvc.version_output(name, f"data/{name}", context.log)
    for run in runs:
        run.set_tags({"dvc_hash": versioning["dvc_hash"]})
    return versioning


def result_metadata(path: Path, run_url: str, versioning: dict[str, Any], preview: tuple[bytes, str] | None,
                    values: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """What every asset page shows: where the output is, its values, the preview (PNG, caption),
    the MLflow run and the DVC version."""
    metadata: dict[str, Any] = {"path": dg.MetadataValue.path(str(path)), **values}
    if preview is not None:
        metadata["preview"] = preview_md(*preview)
    return {**metadata, "mlflow_run_url": dg.MetadataValue.url(run_url), **versioning}


class AssetRun:
    """Context manager: the asset's MLflow run is open inside; ``result`` versions and reports."""

    def __init__(self, context: dg.AssetExecutionContext, mlflow: Any, dvc: Any, params: dict[str, Any],
                 inputs: dict[str, str] | None = None) -> None:  # fmt: skip
        self.context, self.mlflow, self.dvc = context, mlflow, dvc
        self.params, self.inputs = params, inputs or {}
        self.run: Any = None

    def __enter__(self) -> AssetRun:
        hashes = {"params": settings_hash(self.params), **self.inputs}
        self._open = self.mlflow.start_run(self.context, asset_name(self.context), params=self.params,
                                           input_hashes=hashes)  # fmt: skip
        self.run = self._open.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> Any:
        return self._open.__exit__(kind, exc, tb)

    def result(self, path: Path, preview: tuple[bytes, str] | None = None, **values: Any) -> dg.MaterializeResult:
        versioning = versioned(self.context, self.dvc, [self.run])
        return dg.MaterializeResult(metadata=result_metadata(path, self.run.url, versioning, preview, values))
