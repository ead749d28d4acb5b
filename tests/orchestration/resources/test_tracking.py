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
