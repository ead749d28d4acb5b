"""Materialize pose_bank in-process against a temporary Dagster home, MLflow store and DVC repo,
and check everything a user sees: metadata, checks, the MLflow run and the DVC hash."""

from __future__ import annotations

import dagster as dg
import mlflow
import pytest

from orchestration.definitions import ASSETS, CHECKS, defs
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource
from orchestration.settings import PoseBankConfig
from tests.orchestration.conftest import DVC, sh


def resources(root, tmp_path):
    return {
        "storage": StorageResource(root=str(root / "data")),
        "body_model": BodyModelResource(),
        "mlflow": MLflowResource(
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=(tmp_path / "artifacts").as_uri()
        ),  # fmt: skip
        "dvc": DVCResource(),  # the workspace: PD_DVC_REPO (set by the test)
    }


def test_definitions_load():
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "pose_bank" in keys
    assert {"pose_bank", "reference_renders", "control_renders", "pose_detector", "generator", "dpo_pairs",
            "dpo_generator", "round1_generations", "hardness_model", "round2_generations",
            "filtered_dataset", "hmr_checkpoints", "gst_checkpoint", "benchmark_scores"} <= keys  # fmt: skip
    assert {s.name for s in defs.schedules} == {"scheduled_regeneration"}
    assert {s.name for s in defs.sensors} == {"generation_shards_sensor"}
    assert len(CHECKS) == 22  # data contracts (ERROR) and learning targets (WARN), README: make demo


@pytest.mark.slow
def test_materialize_pose_bank_in_process(repo_copy, tmp_path, monkeypatch):
    root, env = repo_copy
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    monkeypatch.delenv("DVC_STAGE", raising=False)
    monkeypatch.setenv("PD_DVC_REPO", str(root))
    instance = dg.DagsterInstance.get()
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=["pose_bank"],
        instance=instance,
        resources=resources(root, tmp_path),
        run_config=dg.RunConfig(ops={"pose_bank": PoseBankConfig(num_poses=24, candidate_factor=2)}),
    )
    assert result.success
    mat = result.asset_materializations_for_node("pose_bank")[0]
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["num_poses"] == 24
    assert meta["nn_dist_mm"] >= meta["nn_dist_random_mm"] > 0
    assert meta["count_anatomical"] == 24
    assert "data:image/png;base64," in meta["preview"]
    assert meta["dvc_hash"].endswith(".dir") and meta["dvc_remote"] == "pushed"
    assert (root / "data" / "pose_bank" / "poses.parquet").is_file()

    checks = [
        e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert len(checks) == 4 and all(c.passed for c in checks), [(c.check_name, c.passed) for c in checks]

    # The asset is recorded as materialized in this (temporary) instance.
    assert instance.get_latest_materialization_event(dg.AssetKey("pose_bank")) is not None

    # MLflow: one run, tagged with the Dagster run id, with the diversity metrics.
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pose_bank")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["dagster.run_id"] == result.run_id and run.data.tags["dvc_hash"] == meta["dvc_hash"]
    assert run.data.metrics["nn_dist_mm"] == pytest.approx(meta["nn_dist_mm"])
    assert run.data.params["pose_bank.num_poses"] == "24"
    assert run.info.run_id in meta["mlflow_run_url"]

    # DVC agrees that the committed output is current.
    status = sh([str(DVC), "status", "pose_bank"], root, env)
    assert "up to date" in status.stdout


def test_bad_run_config_names_the_key(tmp_path):
    from dreamer_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"run_config\.pose_bank\.amass_on_error"):
        PoseBankConfig(amass_on_error="explode").settings()
    with pytest.raises(ConfigError, match=r"run_config\.pose_bank\.num_poses"):
        PoseBankConfig(num_poses=0).settings()
