"""Dagster resources: storage, body model, MLflow tracking and DVC versioning."""

from orchestration.resources.body import BodyModelResource
from orchestration.resources.dvc import DVCResource
from orchestration.resources.storage import StorageResource
from orchestration.resources.tracking import MLflowResource

__all__ = ["BodyModelResource", "DVCResource", "MLflowResource", "StorageResource"]
