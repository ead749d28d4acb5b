"""What a training process does with its tracking store: retries a refused call, and trains
untracked (with a warning) when the store stays out of reach, instead of dying before step 1."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from orchestration import training_entry
from orchestration.resources import tracking


def test_a_refused_create_run_is_retried_and_the_training_gets_its_run(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    create, calls = MlflowClient.create_run, []

    def locked_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return create(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "create_run", locked_once)
    run = training_entry.tracker_for({"mlflow": {"tracking_uri": uri}}, 0, "hmr", "rendered")
    assert isinstance(run, tracking.MLflowRun) and len(calls) == 2
    run.log_metrics({"loss": 1.5}, step=1)
    assert MlflowClient(tracking_uri=uri).get_metric_history(run.run_id, "loss")[0].value == 1.5


def test_a_store_out_of_reach_costs_the_metrics_not_the_training(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(tracking, "RETRIES", 2)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store's folder should be")
    with caplog.at_level("WARNING", logger=tracking.__name__):
        run = training_entry.tracker_for({"mlflow": {"tracking_uri": f"sqlite:///{blocked}/mlflow.db"}}, 0, "hmr", "x")
    assert isinstance(run, training_entry.NullTracker)
    assert any("not opened after 2 tries, training untracked" in r.message for r in caplog.records)
    run.log_metrics({"loss": 1.0}, step=1)  # and training goes on
