"""Runs opened side by side (threads of one asset, parallel runs) share one MLflow experiment:
when two of them find it missing at the same moment, both must still get it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from orchestration.resources import MLflowResource


def test_experiment_created_once_under_concurrency(tmp_path):
    resource = MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                              artifact_root=(tmp_path / "artifacts").as_uri())  # fmt: skip
    resource.experiment_id(resource.client(), "warm-up")  # the schema exists before the race
    both_looked = threading.Barrier(2)

    def create(_: int) -> str:
        client = resource.client()
        lookup = client.get_experiment_by_name
        calls = []

        def look_then_wait(name: str):  # the real lookup; both threads finish it before either creates
            found = lookup(name)
            calls.append(name)
            if len(calls) == 1:
                both_looked.wait(timeout=30)
            return found

        client.get_experiment_by_name = look_then_wait
        return resource.experiment_id(client, "side_by_side")

    with ThreadPoolExecutor(2) as pool:
        ids = list(pool.map(create, range(2)))
    assert len(set(ids)) == 1


def test_a_failing_tracking_call_retries_then_warns_and_never_raises(tmp_path, caplog, monkeypatch):
    """What a training sees when the store refuses a write: a warning, and the training goes on."""
    from orchestration.resources import tracking

    resource = MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                              artifact_root=(tmp_path / "artifacts").as_uri())  # fmt: skip
    client = resource.client()
    run = tracking.MLflowRun(client, "0" * 32, resource.experiment_id(client, "gone"), "")  # no such run
    monkeypatch.setattr(tracking, "RETRIES", 2)
    with caplog.at_level("WARNING", logger=tracking.__name__):
        assert run.log_metrics({"loss": 1.0}, step=1) is None
        run.set_tags({"k": "v"})
    assert sum("failed 2 times, skipped" in r.message for r in caplog.records) == 2

    exp_id = resource.experiment_id(client, "gone")  # a real run on the same store records what it is given
    good = tracking.MLflowRun(client, client.create_run(exp_id).info.run_id, exp_id, "")
    good.log_metrics({"loss": 0.5}, step=3)
    assert client.get_metric_history(good.run_id, "loss")[0].value == 0.5


def test_names_like_keys_and_passwords_are_secret():
    from orchestration.resources.tracking import _is_secret

    for name in ("AWS_ACCESS_KEY_ID", "S3_KEY", "DB_PASS", "MLFLOW_TRACKING_PASSWORD", "HF_TOKEN", "api-key"):
        assert _is_secret(name), name
    for name in ("pose_bank.num_poses", "filtered_dataset.min_keypoint_score", "keypoints", "monkey"):
        assert not _is_secret(name), name


WRITER = """
import sys
from orchestration.resources import MLflowResource
from orchestration.resources.tracking import MLflowRun
uri, artifacts, name, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
resource = MLflowResource(tracking_uri=uri, artifact_root=artifacts)
client = resource.client()
exp = resource.experiment_id(client, "side_by_side")
run = MLflowRun(client, client.create_run(exp, run_name=name).info.run_id, exp, "")
for step in range(steps):
    run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
print(run.run_id)
"""


def test_four_workers_and_three_trainings_write_one_sqlite_store_at_once(tmp_path):
    """What a local backfill with HMR training does to the MLflow store: 4 worker processes and 3
    training threads log metrics side by side into one SQLite file; every one of them finishes
    (a locked database is retried, never raised) and the store holds their points."""
    import subprocess
    import sys

    from orchestration.resources.tracking import MLflowRun
    from tests.helpers.repo import REPO

    uri, artifacts = f"sqlite:///{tmp_path / 'mlflow.db'}", (tmp_path / "artifacts").as_uri()
    resource = MLflowResource(tracking_uri=uri, artifact_root=artifacts)
    client = resource.client()
    exp = resource.experiment_id(client, "side_by_side")
    command = [sys.executable, "-c", WRITER, uri, artifacts]
    workers = [subprocess.Popen([*command, f"worker-{i}", "60"], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for i in range(4)]  # fmt: skip

    def training(i: int) -> str:
        run = MLflowRun(client, client.create_run(exp, run_name=f"training-{i}").info.run_id, exp, "")
        for step in range(60):
            run.log_metrics({"loss": 1.0 / (step + 1), "lr": 0.001}, step=step)
        return run.run_id

    with ThreadPoolExecutor(3) as pool:
        trainings = list(pool.map(training, range(3)))
    outs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, [err[-1000:] for _, err in outs]
    for run_id in [*trainings, *(out.strip().splitlines()[-1] for out, _ in outs)]:
        assert len(client.get_metric_history(run_id, "loss")) == 60, run_id
