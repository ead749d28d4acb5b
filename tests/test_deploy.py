"""The cluster example configuration in deploy/k8s is valid for the versions we pin: the Dagster
instance (Kubernetes run launcher, PostgreSQL storage, concurrency), the step executor's run
config for shard backfills, and the MLflow server's command line."""

from __future__ import annotations

import importlib
import shlex
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

from dreamer_core.config import load_settings
from dreamer_core.errors import ConfigError
from orchestration.executors import executor_from_env
from tests.helpers.repo import REPO

DEPLOY = REPO / "deploy" / "k8s"


def test_instance_config_and_its_classes_validate(monkeypatch):
    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(var, "x")
    config, _ = dagster_instance_config(str(DEPLOY), "dagster.yaml")
    for section in ("run_launcher", "compute_logs"):
        entry = config[section]
        cls = getattr(importlib.import_module(entry["module"]), entry["class"])
        result = process_config(cls.config_type(), entry.get("config") or {})
        assert result.success, (section, [e.message for e in result.errors])
    assert config["storage"]["postgres"]["postgres_db"]["db_name"] == "dagster"
    assert config["concurrency"]["pools"]["default_limit"] >= 1


def test_backfill_run_config_fits_the_k8s_step_executor(monkeypatch):
    monkeypatch.setenv("PD_EXECUTOR", "k8s")
    from dagster_k8s import k8s_job_executor

    from orchestration.definitions import ASSETS, CHECKS, RESOURCES, schedules

    assert executor_from_env() is k8s_job_executor
    defs = dg.Definitions(assets=ASSETS, asset_checks=CHECKS, jobs=schedules.JOBS, resources=RESOURCES,
                          executor=executor_from_env())  # fmt: skip
    run_config = yaml.safe_load((DEPLOY / "backfill-run-config.yaml").read_text())
    for job in ("round1_shard", "round2_shard"):
        assert dg.validate_run_config(defs.resolve_job_def(job), run_config)
    with pytest.raises(dg.DagsterInvalidConfigError):  # a misspelt key is caught, not ignored
        dg.validate_run_config(defs.resolve_job_def("round1_shard"), {"execution": {"config": {"max_concurent": 4}}})


def test_unknown_executor_is_named(monkeypatch):
    monkeypatch.setenv("PD_EXECUTOR", "celery")
    with pytest.raises(ConfigError, match=r"PD_EXECUTOR: must be one of \['multiprocess', 'in_process', 'k8s'\]"):
        executor_from_env()


def _manifests(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def test_mlflow_server_command_and_pipeline_env_agree():
    deployment = next(d for d in _manifests("mlflow.yaml") if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    flags = {a.split("=", 1)[0] for a in container["args"]}
    help_text = subprocess.run([str(Path(sys.executable).parent / "mlflow"), "server", "--help"], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
    assert flags and all(f in help_text for f in flags), flags
    args = dict(a.split("=", 1) for a in container["args"] if "=" in a)
    assert args["--backend-store-uri"].startswith("postgresql://")
    service = next(d for d in _manifests("mlflow.yaml") if d["kind"] == "Service")
    env = next(d for d in _manifests("pipeline-env.yaml") if d["kind"] == "ConfigMap")["data"]
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert env["MLFLOW_TRACKING_URI"] == f"http://{host}:{service['spec']['ports'][0]['port']}"
    assert env["PD_EXECUTOR"] == "k8s" and env["PD_PROFILE"] == "full"
    full = load_settings(REPO / "params.yaml", profile="full").hmr.launcher
    assert shlex.split(full)[0] == "torchrun"
