"""Which executor runs the steps of a run: ``PD_EXECUTOR`` (default ``multiprocess``).

Locally every step gets its own process (what ``dagster dev`` and a UI backfill use); on a
cluster ``PD_EXECUTOR=k8s`` makes every step a Kubernetes job (``dagster_k8s.k8s_job_executor``,
configured per run by ``execution.config``, see deploy/k8s/backfill-run-config.yaml), while the
K8sRunLauncher of the instance (deploy/k8s/dagster.yaml) puts every run, and so every shard of a
backfill, in its own pod.
"""

from __future__ import annotations

import os

import dagster as dg

from dreamer_core.errors import ConfigError

EXECUTOR_ENV = "PD_EXECUTOR"
CHOICES = ("multiprocess", "in_process", "k8s")


def executor_from_env() -> dg.ExecutorDefinition:
    name = os.environ.get(EXECUTOR_ENV, "multiprocess")
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "in_process":
        return dg.in_process_executor
    if name == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError as exc:
            raise ConfigError(f"{EXECUTOR_ENV}=k8s needs dagster-k8s: pip install 'posedreamer-gst[cluster]'") from exc
        return k8s_job_executor
    raise ConfigError(f"{EXECUTOR_ENV}: must be one of {list(CHOICES)}, got {name!r}")
