"""MLflow tracking: one run per materialization, tagged so runs trace back to Dagster and data.

Implements ``dreamer_core.tracking.Tracker`` so that core loops can report without importing
MLflow. Store: SQLite in the repo by default (MLflow 3 refuses the file store); set
MLFLOW_TRACKING_URI to use a shared server.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from dreamer_core.config import Section
from orchestration.env import default_artifact_root, default_tracking_uri, mlflow_dir, mlflow_ui_url

EXPERIMENT_KIND = "mlflow.experimentKind"
# Keys whose values must never reach a tracking server: names holding one of the markers, or a
# "key" / "pass" / "pwd" word (AWS_ACCESS_KEY_ID, S3_KEY, DB_PASS).
_SECRET_MARKERS = ("password", "passwd", "secret", "token", "api_key", "apikey", "credential", "private_key")
_SECRET_WORD = re.compile(r"(^|[_.-])(key|pass|pwd|auth)([_.-]|$)")
_log = logging.getLogger(__name__)
RETRIES = 4  # attempts of one tracking call before it becomes a warning (a locked SQLite store, a busy server)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s/]+)@")


def redact(value: str) -> str:
    """``value`` with what must not be stored removed: passwords inside URLs
    (``postgresql://user:***@host``) and the values of secret environment variables (tokens,
    keys) wherever they appear."""
    value = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", value)
    for name, secret in os.environ.items():
        if len(secret) >= 8 and _is_secret(name) and secret in value:
            value = value.replace(secret, "***")
    return value


def _is_secret(key: str) -> bool:
    low = key.lower()
    return any(m in low for m in _SECRET_MARKERS) or bool(_SECRET_WORD.search(low))


def retried(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)`` retried with backoff; the last failure is raised (what a caller
    cannot go on without: the run an asset logs into)."""
    import time

    for attempt in range(RETRIES - 1):
        try:
            return call(*args, **kwargs)
        except Exception:  # noqa: BLE001 - any tracking failure (store, network) is retried
            time.sleep(0.25 * 2**attempt)
    return call(*args, **kwargs)


def tolerant(call: Any) -> Any:
    """A tracking call retried with backoff, then given up with a warning: losing a metric point
    must never kill a training ("database is locked" from a SQLite store written by several
    processes, a tracking server restarting)."""
    import functools

    @functools.wraps(call)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return retried(call, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any tracking failure (store, network) degrades
            _log.warning("MLflow %s failed %d times, skipped: %s", call.__name__, RETRIES, redact(str(exc)))
            return None

    return wrapper


class MLflowRun:
    def __init__(self, client: Any, run_id: str, experiment_id: str, url: str) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.url = url

    @tolerant
    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = _flatten(params)
        items = [Param(k, redact(str(v))[:6000]) for k, v in sorted(flat.items()) if not _is_secret(k)]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    @tolerant
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=items)

    @tolerant
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_image_bytes(self, name: str, png: bytes, artifact_path: str = "previews") -> None:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / name
            p.write_bytes(png)
            self.log_artifact(p, artifact_path)

    @tolerant
    def set_tags(self, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, redact(str(v)))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Section):
            v = v.to_dict()
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(list(v))
        else:
            out[key] = v
    return out


class MLflowResource(dg.ConfigurableResource):
    tracking_uri: str = ""  # empty: MLFLOW_TRACKING_URI or sqlite:///<repo>/mlflow/mlflow.db
    artifact_root: str = ""  # empty: <repo>/mlflow/artifacts
    ui_url: str = ""  # empty: PD_MLFLOW_UI_URL or http://127.0.0.1:5000 (make ui's MLflow)

    def uri(self) -> str:
        return self.tracking_uri or default_tracking_uri()

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        uri = self.uri()
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        return MlflowClient(tracking_uri=uri)

    def experiment_id(self, client: Any, name: str) -> str:
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        root = self.artifact_root or default_artifact_root()
        if root.startswith("file:"):
            mlflow_dir().mkdir(parents=True, exist_ok=True)
        from mlflow.exceptions import MlflowException

        try:
            # The kind tag opens the experiment in MLflow's model-training view (runs table, compare).
            return client.create_experiment(
                name, artifact_location=f"{root.rstrip('/')}/{name}", tags={EXPERIMENT_KIND: "custom_model_development"}
            )
        except MlflowException:  # another run or thread created it a moment ago
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    @contextmanager
    def start_run(
        self,
        context: dg.AssetExecutionContext,
        experiment: str,
        params: dict[str, Any] | None = None,
        input_hashes: dict[str, str] | None = None,
    ) -> Iterator[MLflowRun]:
        """Open a run tagged with Dagster's run id, asset key and partition; close it on exit."""
        client = self.client()
        exp_id = retried(self.experiment_id, client, experiment)
        asset_key = context.asset_key.to_user_string()
        partition = context.partition_key if context.has_partition_key else ""
        tags = {
            "dagster.run_id": context.run.run_id,
            "dagster.asset_key": asset_key,
            "dagster.partition": partition,
            "mlflow.runName": f"{asset_key}{'-' + partition if partition else ''}-{context.run.run_id[:8]}",
        }
        for name, digest in (input_hashes or {}).items():
            tags[f"input_hash.{name}"] = digest
        run = retried(client.create_run, exp_id, tags=tags)
        url = f"{self.ui_url or mlflow_ui_url()}/#/experiments/{exp_id}/runs/{run.info.run_id}"
        tracked = MLflowRun(client, run.info.run_id, exp_id, url)
        if params:
            tracked.log_params(params)
        try:
            yield tracked
        except BaseException:
            tolerant(client.set_terminated)(run.info.run_id, "FAILED")
            raise
        tolerant(client.set_terminated)(run.info.run_id, "FINISHED")  # the data is published
