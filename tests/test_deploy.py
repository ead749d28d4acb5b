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


def test_gpu_steps_are_the_gpu_pool(monkeypatch):
    """The run configs give a GPU to exactly the steps of the `gpu` concurrency pool (and the
    backfill one to the generation rounds it backfills); both validate against the k8s executor."""
    monkeypatch.setenv("PD_EXECUTOR", "k8s")
    from orchestration.definitions import ASSETS, CHECKS, RESOURCES, schedules

    pool = {a.op.name for a in ASSETS if isinstance(a, dg.AssetsDefinition) and a.op.pool == "gpu"}
    assert {"pose_detector", "generator", "hmr_checkpoints", "gst_checkpoint", "round1_generations",
            "control_renders", "reference_renders", "filtered_dataset", "benchmark_scores"} <= pool  # fmt: skip

    def gpu_steps(name: str) -> set[str]:
        config = yaml.safe_load((DEPLOY / name).read_text())["execution"]["config"]
        assert "nvidia.com/gpu" not in str(config["step_k8s_config"])  # CPU steps take no GPU
        return {k for k, v in config["per_step_k8s_config"].items()
                if v["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == 1}  # fmt: skip

    assert gpu_steps("run-config.yaml") == pool
    assert gpu_steps("backfill-run-config.yaml") == {"control_renders", "round1_generations", "round2_generations"}
    defs = dg.Definitions(assets=ASSETS, asset_checks=CHECKS, jobs=schedules.JOBS, resources=RESOURCES,
                          executor=executor_from_env())  # fmt: skip
    job = defs.resolve_implicit_global_asset_job_def()
    assert dg.validate_run_config(job, yaml.safe_load((DEPLOY / "run-config.yaml").read_text()))


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
    assert args["--backend-store-uri"].startswith("postgresql://") and args["--app-name"] == "basic-auth"
    from orchestration.resources.tracking import redact

    on_command_line = [a for a in container["args"] if "$(" in a or redact(a) != a]  # ps shows args to every user
    assert not on_command_line, on_command_line
    env = {v["name"]: v for v in container["env"]}
    for name in ("PGPASSWORD", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD",
                 "MLFLOW_FLASK_SERVER_SECRET_KEY"):  # fmt: skip
        assert "secretKeyRef" in env[name].get("valueFrom", {}), name
    ini = next(d for d in _manifests("mlflow.yaml") if d["kind"] == "ConfigMap")["data"]["basic_auth.ini"]
    assert "password" not in ini.lower() and "default_permission = NO_PERMISSIONS" in ini
    secret = next(d for d in _manifests("pipeline-env.yaml") if d["kind"] == "Secret")["stringData"]
    assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(secret)  # what the clients sign in with
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()  # the basic-auth app needs Flask-WTF (mlflow[auth])
    assert "Flask-WTF" in dockerfile and "import mlflow.server.auth" in dockerfile
    service = next(d for d in _manifests("mlflow.yaml") if d["kind"] == "Service")
    env = next(d for d in _manifests("pipeline-env.yaml") if d["kind"] == "ConfigMap")["data"]
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert env["MLFLOW_TRACKING_URI"] == f"http://{host}:{service['spec']['ports'][0]['port']}"
    assert env["PD_EXECUTOR"] == "k8s" and env["PD_PROFILE"] == "full"
    full = load_settings(REPO / "params.yaml", profile="full").hmr.launcher
    assert shlex.split(full)[0] == "torchrun"


def _kustomized() -> list[dict]:
    """What `kubectl apply -k deploy/k8s` creates: the listed resources plus the generated ConfigMaps."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs = [d for name in kustomization["resources"] for d in _manifests(name)]
    for gen in kustomization.get("configMapGenerator", []):
        data = {Path(f).name: (DEPLOY / f).read_text() for f in gen["files"]}
        docs.append({"kind": "ConfigMap", "metadata": {"name": gen["name"], "namespace": kustomization["namespace"]},
                     "data": data})  # fmt: skip
    return docs


def _pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            out.append((f"{d['kind']}/{d['metadata']['name']}", spec["template"]["spec"]))
    return out


def test_every_manifest_reference_is_defined():
    """Every ConfigMap, Secret (and key), claim and service account a pod, the run launcher or the
    instance refers to is created by `kubectl apply -k deploy/k8s`; the claim is ReadWriteMany."""
    docs = _kustomized()
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"]) | {f for g in kustomization["configMapGenerator"] for f in g["files"]}
    run_configs = {"backfill-run-config.yaml", "run-config.yaml"}
    assert listed == {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml", *run_configs}
    assert {d["metadata"].get("namespace", "posedreamer") for d in docs if d["kind"] != "Namespace"} == {"posedreamer"}
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    secrets = {n: set(s.get("stringData", {})) | set(s.get("data", {})) for n, s in by_kind["Secret"].items()}
    config_maps, claims = by_kind["ConfigMap"], by_kind["PersistentVolumeClaim"]
    missing: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            missing.append(what)

    def check_env(where: str, container: dict) -> None:
        for src in container.get("envFrom", []):
            if "configMapRef" in src:
                need(src["configMapRef"]["name"] in config_maps, f"{where}: ConfigMap {src['configMapRef']['name']}")
            if "secretRef" in src:
                need(src["secretRef"]["name"] in secrets, f"{where}: Secret {src['secretRef']['name']}")
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                need(ref["key"] in secrets.get(ref["name"], set()), f"{where}: Secret {ref['name']} key {ref['key']}")

    for where, spec in _pod_specs(docs):
        for container in spec["containers"]:
            check_env(where, container)
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                need(volume["persistentVolumeClaim"]["claimName"] in claims, f"{where}: claim of {volume['name']}")
            if "configMap" in volume:
                need(volume["configMap"]["name"] in config_maps, f"{where}: ConfigMap {volume['configMap']['name']}")
        if "serviceAccountName" in spec:
            need(spec["serviceAccountName"] in by_kind["ServiceAccount"], f"{where}: {spec['serviceAccountName']}")
    launcher = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_launcher"]["config"]
    need(launcher["instance_config_map"] in config_maps, "run launcher: instance ConfigMap")
    need(launcher["service_account_name"] in by_kind["ServiceAccount"], "run launcher: service account")
    need("postgresql-password" in secrets.get(launcher["postgres_password_secret"], set()), "run launcher: PG secret")
    for name in launcher["env_config_maps"]:
        need(name in config_maps, f"run launcher: ConfigMap {name}")
    for name in launcher["env_secrets"]:
        need(name in secrets, f"run launcher: Secret {name}")
    for volume in launcher["volumes"]:
        if "persistentVolumeClaim" in volume:
            need(volume["persistentVolumeClaim"]["claimName"] in claims, "run launcher: claim")
    assert {m["mountPath"] for m in launcher["volume_mounts"]} >= {"/data", "/dev/shm"}  # loader workers need shm
    assert not missing, missing
    assert all("ReadWriteMany" in c["spec"]["accessModes"] for c in claims.values())


def _instance_env_vars() -> set[str]:
    found: set[str] = set()

    def walk(v):  # noqa: ANN001, ANN202
        if isinstance(v, dict):
            if set(v) == {"env"}:
                found.add(v["env"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(yaml.safe_load((DEPLOY / "dagster.yaml").read_text()))
    return found


def test_every_variable_the_instance_reads_is_set_in_every_pod_that_loads_it():
    """The webserver and the daemon get them from their manifests; run pods from the run launcher's
    ConfigMaps and its PostgreSQL secret (which it exposes as DAGSTER_PG_PASSWORD)."""
    docs = _kustomized()
    needed = _instance_env_vars()
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"} <= needed
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d.get("stringData", {}) for d in docs if d["kind"] == "Secret"}
    for where, spec in _pod_specs(docs):
        if not where.startswith("Deployment/dagster-"):
            continue
        for container in spec["containers"]:
            have = {v["name"] for v in container.get("env", [])}
            for src in container.get("envFrom", []):
                have |= set(maps.get(src.get("configMapRef", {}).get("name"), {}))
                have |= set(secrets.get(src.get("secretRef", {}).get("name"), {}))
            assert needed <= have, (where, needed - have)
    launcher = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_launcher"]["config"]
    run_pods = {k for m in launcher["env_config_maps"] for k in maps[m]} | {"DAGSTER_PG_PASSWORD"}
    assert needed <= run_pods, needed - run_pods


def test_dvc_workspace_is_on_the_shared_volume_and_the_image_has_dvc():
    env = next(d for d in _manifests("pipeline-env.yaml") if d["kind"] == "ConfigMap")["data"]
    assert env["PD_DATA_DIR"] == f"{env['PD_DVC_REPO']}/data" and env["PD_DVC_REPO"].startswith("/data/")
    assert env["ANNY_CACHE_DIR"].startswith("/data/") and env["WARP_CACHE_PATH"].startswith("/data/")
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert instance["compute_logs"]["class"] != "NoOpComputeLogManager"
    assert instance["compute_logs"]["config"]["base_dir"].startswith("/data/")
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "venv .venv-dvc" in dockerfile and "requirements/dvc-lock.txt" in dockerfile
    assert "'.[cluster]'" in dockerfile and "PD_DVC_BIN=/app/.venv-dvc/bin/dvc" in dockerfile
    images = {c["image"] for _, spec in _pod_specs(_kustomized()) for c in spec["containers"]}
    launcher = instance["run_launcher"]["config"]["job_image"]
    assert launcher in images  # the webserver, daemon and runs share one image (postgres aside)


def test_dvc_refuses_a_data_folder_it_does_not_version(tmp_path, monkeypatch):
    from orchestration.resources import DVCResource

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("PD_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("PD_DVC_REPO", str(tmp_path))
    with pytest.raises(dg.Failure, match="set PD_DATA_DIR to"):
        DVCResource().check_layout("data/pose_bank")
    monkeypatch.setenv("PD_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "pose_bank").mkdir(parents=True)
    DVCResource().check_layout("data/pose_bank")
    monkeypatch.setenv("PD_DVC_REPO", str(tmp_path / "data"))
    with pytest.raises(dg.Failure, match="has no dvc.yaml"):
        DVCResource().check_layout("data/pose_bank")


def test_a_held_dvc_lock_fails_the_step_after_its_timeout(tmp_path, monkeypatch):
    """One DVC writer at a time across pods: a second waits on the workspace lock, then gives up
    with a message instead of hanging the run forever."""
    import fcntl

    from orchestration.resources import DVCResource

    monkeypatch.setenv("PD_DVC_REPO", str(tmp_path))
    monkeypatch.setenv("PD_DVC_BIN", "/bin/true")
    lock = tmp_path / ".dvc" / "tmp" / "pd-resource.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # another run's commit, in progress
        with pytest.raises(dg.Failure, match="held by another run for more than 1 s"):
            DVCResource(lock_timeout_s=1.0).run("status")
    assert DVCResource(lock_timeout_s=1.0).run("status").returncode == 0  # free again: it runs


def test_dvc_failure_messages_carry_no_credentials(tmp_path, monkeypatch):
    from orchestration.resources import DVCResource

    fake_remote = tmp_path / "dvc"  # a DVC that fails the way a push to a remote with credentials does
    fake_remote.write_text("#!/bin/sh\necho 'ERROR: failed to push to https://ci:hunter2-remote-pass@dvc.example' >&2\n"
                           "exit 1\n")  # fmt: skip
    fake_remote.chmod(0o755)
    monkeypatch.setenv("PD_DVC_REPO", str(tmp_path))
    monkeypatch.setenv("PD_DVC_BIN", str(fake_remote))
    with pytest.raises(dg.Failure) as info:
        DVCResource(retries=1).run("push")
    assert "hunter2-remote-pass" not in str(info.value) and "https://ci:***@dvc.example" in str(info.value)
