"""Scheduled regeneration, evaluated the way the Dagster daemon evaluates it: the schedule is off
by default and launches the regenerate_shards job; the job adds shards with new names (fresh
seeds); the sensor requests a run per new shard (round 2 only once a hardness model exists),
once per shard, and refreshes the dataset when every shard has landed."""

from __future__ import annotations

import dagster as dg

from orchestration.definitions import defs
from orchestration.schedules import generation_shards_sensor, next_shards, regeneration_schedule


def _keys(requests):
    return sorted((r.job_name.replace("_shard", "_generations"), r.partition_key) for r in requests)


def test_next_shards_never_reuses_names():
    assert next_shards([], 2) == ["shard-000000", "shard-000001"]
    assert next_shards(["shard-000000", "shard-000007", "other"], 1) == ["shard-000008"]


def test_schedule_job_and_sensor(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    assert regeneration_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.build_schedule_context(instance=instance) as ctx:
        requests = regeneration_schedule.evaluate_tick(ctx).run_requests
    assert len(requests) == 1 and regeneration_schedule.job_name == "regenerate_shards"

    job = defs.get_job_def("regenerate_shards")
    run_config = {"ops": {"add_generation_shards": {"config": {"round1_shards": 2, "round2_shards": 1}}}}
    assert job.execute_in_process(instance=instance, run_config=run_config).success
    assert instance.get_dynamic_partitions("round1_shards") == ["shard-000000", "shard-000001"]
    assert instance.get_dynamic_partitions("round2_shards") == ["shard-000000"]

    def tick():
        with dg.build_sensor_context(instance=instance, definitions=defs) as ctx:
            requests = generation_shards_sensor(ctx)
        for r in requests:  # every requested job resolves (one partitioning per job)
            assert defs.resolve_job_def(r.job_name).name == r.job_name
        return requests

    # No hardness model yet: only round 1's shards are requested.
    assert _keys(tick()) == [("round1_generations", "shard-000000"), ("round1_generations", "shard-000001")]
    for p in ("shard-000000", "shard-000001"):
        instance.report_runless_asset_event(dg.AssetMaterialization("round1_generations", partition=p))
    instance.report_runless_asset_event(dg.AssetMaterialization("hardness_model"))
    assert _keys(tick()) == [("round2_generations", "shard-000000")]
    instance.report_runless_asset_event(dg.AssetMaterialization("round2_generations", partition="shard-000000"))
    refresh = tick()
    assert len(refresh) == 1 and refresh[0].job_name == "refresh_dataset"
    instance.report_runless_asset_event(dg.AssetMaterialization("filtered_dataset"))
    assert tick() == []

    # A second regeneration continues the numbering: new names, so new seed streams.
    assert job.execute_in_process(instance=instance, run_config=run_config).success
    assert instance.get_dynamic_partitions("round1_shards")[-2:] == ["shard-000002", "shard-000003"]
    assert ("round1_generations", "shard-000002") in _keys(tick())


def test_sensor_skips_shards_in_flight_retries_failed_ones_and_gives_up(tmp_path, monkeypatch):
    """A shard a UI backfill is running is not requested again; a failed shard is requested again
    under a new run key, up to MAX_ATTEMPTS runs; a shard that failed them all no longer holds the
    dataset refresh back."""
    from orchestration.schedules import MAX_ATTEMPTS, add_shards

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    add_shards(instance, 1, 2)

    def tick():
        with dg.build_sensor_context(instance=instance, definitions=defs) as ctx:
            return generation_shards_sensor(ctx)

    def run_of(partition, job="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED):
        asset_job = job == "__ASSET_JOB"  # what a backfill from the asset page launches
        return instance.create_run_for_job(
            defs.resolve_implicit_global_asset_job_def() if asset_job else defs.resolve_job_def(job),
            status=status, tags={"dagster/partition": partition},
            asset_selection={dg.AssetKey("round1_generations")} if asset_job else None)  # fmt: skip

    backfill = run_of("shard-000000")
    requests = tick()
    assert _keys(requests) == [("round1_generations", "shard-000001")]
    assert requests[0].run_key == "round1_generations:shard-000001:attempt-1"
    instance.report_run_failed(backfill)
    instance.report_runless_asset_event(dg.AssetMaterialization("round1_generations", partition="shard-000001"))
    retry = tick()
    assert [r.run_key for r in retry] == ["round1_generations:shard-000000:attempt-2"]
    for _ in range(MAX_ATTEMPTS - 1):  # the sensor's own retries fail too
        instance.report_run_failed(run_of("shard-000000", job="round1_shard"))
    refresh = tick()  # given up on: the shard that landed is refreshed into the dataset
    assert len(refresh) == 1 and refresh[0].job_name == "refresh_dataset"
    run_of("shard-000000", job="round1_shard")  # someone materializes it again by hand: in flight
    assert tick() == []  # no refresh while a shard run is in flight
