"""Process environment and in-repo locations, so that a fresh clone runs with no set-up.

Every default lives inside the repository (git-ignored) and every one can be overridden by the
environment: DAGSTER_HOME, MLFLOW_TRACKING_URI, PD_MLFLOW_UI_URL, PD_DATA_DIR, ANNY_CACHE_DIR,
WARP_CACHE_PATH.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    return Path(os.environ.get("PD_DATA_DIR", REPO_ROOT / "data")).resolve()


def asset_dir(asset_key: str) -> Path:
    return data_dir() / asset_key


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME", REPO_ROOT / "dagster_home")).resolve()


def mlflow_dir() -> Path:
    return REPO_ROOT / "mlflow"


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mlflow_dir() / 'mlflow.db'}"


MLFLOW_UI_URL_ENV = "PD_MLFLOW_UI_URL"


def mlflow_ui_url() -> str:
    """Where people open MLflow runs from asset pages: ``make ui``'s MLflow, or a shared server."""
    return os.environ.get(MLFLOW_UI_URL_ENV, "http://127.0.0.1:5000").rstrip("/")


def default_artifact_root() -> str:
    return os.environ.get("PD_MLFLOW_ARTIFACT_ROOT") or (mlflow_dir() / "artifacts").as_uri()


# A new local instance: no telemetry; runs the daemon launches (UI materializations, backfills,
# sensors, schedules) queue two at a time, as many as a 2-core laptop runs well. Raise the limit in
# dagster_home/dagster.yaml on a bigger machine; deploy/k8s/dagster.yaml is the cluster's.
LOCAL_INSTANCE = """telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
"""


def ensure_dagster_home() -> Path:
    """Create DAGSTER_HOME with the local instance config (a missing home makes Dagster use a temp dir)."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(LOCAL_INSTANCE)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def apply_defaults(profile: str) -> None:
    """Set cache locations and offline switches before heavy libraries are imported."""
    os.environ.setdefault("ANNY_CACHE_DIR", str(REPO_ROOT / ".cache" / "anny"))
    os.environ.setdefault("WARP_CACHE_PATH", str(REPO_ROOT / ".cache" / "warp"))
    os.environ.setdefault("MPLCONFIGDIR", str(REPO_ROOT / ".cache" / "matplotlib"))
    if profile == "tiny":
        # Nothing in tiny may download; hub look-ups fail fast instead of hanging.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
