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

from orchestration.definitions import ASSETS, CHECKS
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
