"""Security defaults: nothing unpickles user files unless the user opted in, no archive is
extracted blindly, and secrets never reach MLflow or the run log. (Servers binding to loopback
only: tests/orchestration/test_ui.py; archive members with absolute paths or '..':
tests/hardening/test_bad_inputs.py.)"""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from dreamer_core.errors import PipelineInputError
from orchestration.definitions import ASSETS, CHECKS, RESOURCES
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource
from orchestration.resources.tracking import MLflowRun, redact
from orchestration.settings import PoseBankConfig
from tests.helpers.repo import REPO

PACKAGES = ["dreamer_core", "avatar_core", "orchestration", "scripts"]
# The one place that may unpickle: official SMPL .pkl files, only with body_model.allow_pickle_models.
OPT_IN = {("dreamer_core/bodies/smplx_backend.py", "pickle.load")}


def _calls(path: Path) -> list[tuple[str, ast.Call]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            name = f"{f.value.id}.{f.attr}" if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            name = name or (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
            found.append((name, node))
    return found


def _kw(call: ast.Call, key: str) -> object:
    for k in call.keywords:
        if k.arg == key and isinstance(k.value, ast.Constant):
            return k.value.value
    return None


def test_no_unsafe_deserialization_in_the_code():
    bad = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for name, call in _calls(path):
                where = f"{rel}:{call.lineno} {name}"
                if name == "torch.load" and _kw(call, "weights_only") is not True:
                    bad.append(f"{where} without weights_only=True")
                elif name in ("pickle.load", "pickle.loads", "joblib.load", "dill.load") and (rel, name) not in OPT_IN:
                    bad.append(where)
                elif name in ("np.load", "numpy.load") and _kw(call, "allow_pickle") is True:
                    bad.append(f"{where} with allow_pickle=True")
                elif name == "yaml.load":
                    bad.append(f"{where} (use yaml.safe_load)")
                elif name.endswith("extractall"):
                    bad.append(f"{where} (extract member by member through the shard reader's path checks)")
    assert not bad, "unsafe deserialization:\n" + "\n".join(bad)


SECRETS = {
    "HF_TOKEN": "hf_notARealTokenButLongEnough",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/notreal",
    "MLFLOW_TRACKING_PASSWORD": "hunter2-tracking-pass",
}


def test_redaction_of_urls_and_secret_values(monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    assert redact("postgresql://mlflow:s3cr3t@db:5432/mlflow") == "postgresql://mlflow:***@db:5432/mlflow"
    assert redact(f"weights from hub with {SECRETS['HF_TOKEN']}") == "weights from hub with ***"
    assert redact("s3://bucket/path and sqlite:///x.db") == "s3://bucket/path and sqlite:///x.db"


@pytest.mark.slow
def test_secrets_never_reach_mlflow_or_the_run_log(tmp_path, monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MLflowResource(tracking_uri=uri, artifact_root=(tmp_path / "art").as_uri())
    resources = {"storage": StorageResource(root=str(tmp_path / "data")), "body_model": BodyModelResource(),
                 "mlflow": mlflow, "dvc": DVCResource(enabled=False)}  # fmt: skip
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([*ASSETS, *CHECKS], selection=["pose_bank"], resources=resources, instance=instance,
                            run_config=dg.RunConfig(ops={"pose_bank": PoseBankConfig(num_poses=12)}))  # fmt: skip
    assert result.success
    # Parameters a user might pass: a token under a secret-looking key, credentials inside a URL.
    client = mlflow.client()
    run = client.create_run(mlflow.experiment_id(client, "pose_bank"))
    tracked = MLflowRun(client, run.info.run_id, run.info.experiment_id, "")
    tracked.log_params({"generator": {"weights": "s3://ci:hunter2-tracking-pass@bucket/w", "hub_token": "abc12345678"},
                        "note": f"pulled with {SECRETS['HF_TOKEN']}"})  # fmt: skip
    tracked.set_tags({"source": f"https://user:{SECRETS['AWS_SECRET_ACCESS_KEY']}@example.invalid/x"})
    stored = client.get_run(run.info.run_id).data
    assert "generator.hub_token" not in stored.params
    assert stored.params["generator.weights"] == "s3://ci:***@bucket/w"

    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # every param, tag and metric key MLflow holds
        rows = [str(r) for table in ("params", "tags", "metrics", "experiment_tags")
                for r in db.execute(f"SELECT * FROM {table}")]  # fmt: skip
    logs = [e.user_message + str(e.dagster_event) for e in instance.all_logs(result.run_id)]
    assert len(rows) > 10 and len(logs) > 10
    for name, secret in SECRETS.items():
        assert not [r for r in rows if secret in r], f"{name} reached MLflow"
        assert not [m for m in logs if secret in m], f"{name} reached the Dagster run log"


@pytest.mark.parametrize(
    "launcher",
    ["torchrun --no-python sh -c 'id'", "torchrun --standalone sh", "bash -c id", "torchrun -m os",
     "torchrun --nproc_per_node '8;id'", 'torchrun "--no-python"', "torchrun --rdzv_conf=x", "python"],
)  # fmt: skip
def test_a_launcher_is_torchrun_with_allowed_flags_only(launcher):
    from dreamer_core.config import HMRSettings
    from dreamer_core.errors import ConfigError
    from orchestration.training_entry import training_command

    with pytest.raises(ConfigError, match="hmr.launcher"):
        HMRSettings.from_mapping({"launcher": launcher}, "hmr.")
    with pytest.raises(PipelineInputError, match="hmr.launcher"):
        training_command("orchestration.train_hmr", launcher)
    ok = "torchrun --standalone --nproc-per-node=8 --nnodes 1:2 --rdzv_endpoint head:29400"
    assert training_command("orchestration.train_hmr", ok)[-2:] == ["-m", "orchestration.train_hmr"]


def test_security_settings_cannot_be_set_from_a_launchpad():
    """What runs (the launcher, the DVC binary and workspace) and what may be unpickled come from
    code, params.yaml or the deployment's environment: no run config or resource config offers them."""
    from dreamer_core.config import HMRSettings
    from dreamer_core.errors import ConfigError
    from orchestration.settings import HMRCheckpointsConfig

    assert "launcher" not in HMRCheckpointsConfig.model_fields
    assert not {"dvc_bin", "repo_dir"} & set(DVCResource.model_fields)
    assert "allow_pickle_models" not in BodyModelResource.model_fields
    with pytest.raises(dg.DagsterInvalidConfigError):  # run config cannot name what the class does not have
        dg.materialize(ASSETS, selection=["pose_bank"], resources=RESOURCES,
                       run_config={"resources": {"dvc": {"config": {"dvc_bin": "/bin/sh"}}}})  # fmt: skip
    for name in ("../../etc", "a/b", "x.y", ""):  # real set names become folder names
        with pytest.raises(ConfigError, match="hmr.real_train"):
            HMRSettings.from_mapping({"real_train": {name: "3dpw:/data/3dpw"}}, "hmr.")
    assert HMRSettings.from_mapping({"real_train": {"3dpw_train-1": "3dpw:/d"}}, "hmr.").real_train


def test_a_second_run_of_an_asset_fails_clearly_while_the_first_writes(tmp_path, monkeypatch):
    """Two runs of one asset never interleave: while a run holds pose_bank (the lock its step takes
    on the data volume), a second run fails naming it and leaves the output as it was; once the
    first is done, the next run materializes."""
    import threading

    monkeypatch.setenv("PD_RUN_LOCK_WAIT_S", "0.5")
    mlflow = MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=(tmp_path / "a").as_uri())
    storage = StorageResource(root=str(tmp_path / "data"))
    resources = {"storage": storage, "body_model": BodyModelResource(), "mlflow": mlflow,
                 "dvc": DVCResource(enabled=False)}  # fmt: skip

    def run() -> dg.ExecuteInProcessResult:
        return dg.materialize([*ASSETS, *CHECKS], selection=["pose_bank"], resources=resources, raise_on_error=False,
                              instance=dg.DagsterInstance.ephemeral(),
                              run_config=dg.RunConfig(ops={"pose_bank": PoseBankConfig(num_poses=12)}))  # fmt: skip

    holding, release = threading.Event(), threading.Event()

    def first_run() -> None:  # the first run, mid-write
        with storage.run_lock("pose_bank", "first-run-id"):
            holding.set()
            release.wait(60)

    thread = threading.Thread(target=first_run)
    thread.start()
    assert holding.wait(30)
    second = run()
    release.set()
    thread.join()
    failure = next(e for e in second.all_events if e.event_type_value == "STEP_FAILURE")
    assert not second.success and "being materialized by" in failure.step_failure_data.user_failure_data.description
    assert "first-run-id" in failure.step_failure_data.user_failure_data.description
    assert not (tmp_path / "data" / "pose_bank" / "poses.parquet").exists()  # the second wrote nothing
    assert run().success
