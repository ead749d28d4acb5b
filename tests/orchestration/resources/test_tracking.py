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
