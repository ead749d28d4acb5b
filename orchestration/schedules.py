"""Scheduled regeneration: a job (launchable from the UI) adds N new shards per round with fresh
seeds (a new shard name is a new seed stream); a schedule runs that job on a cron (off until a
user switches it on); a sensor requests the runs of shards that exist but were never
materialized (none that a run, its own or a UI backfill's, is already working on; a failed one
again, a few times), then refreshes ``hardness_model`` and ``filtered_dataset`` once nothing is
in flight. A shard that failed every attempt is named in the sensor's log and no longer holds
the refresh back.

Round-2 shards draw their poses with whatever hardness model is current when they run.
"""

import dagster as dg

from dreamer_core.datasets.shards import shard_name
from orchestration.assets.dataset import filtered_dataset
from orchestration.assets.mining import ROUND_PARTITIONS, hardness_model, round1_generations, round2_generations
from orchestration.settings import SETTINGS

RG = SETTINGS.round_generations


def next_shards(existing: list[str], n: int) -> list[str]:
    """``n`` shard names after the highest existing index (names are never reused: a deleted
    shard's seeds do not come back under another partition)."""
    used = [int(k.rsplit("-", 1)[1]) for k in existing if k.startswith("shard-") and k.rsplit("-", 1)[1].isdigit()]
    start = max(used, default=-1) + 1
    return [shard_name(start + i).removesuffix(".tar") for i in range(n)]


def add_shards(instance: dg.DagsterInstance, round_index: int, n: int) -> list[str]:
    pdef = ROUND_PARTITIONS[round_index]
    new = next_shards(instance.get_dynamic_partitions(pdef.name), n)
    if new:
        instance.add_dynamic_partitions(pdef.name, new)
    return new


def ensure_initial_shards(instance: dg.DagsterInstance) -> None:
    """A round with no shard yet gets ``round_generations.initial_shards`` (what `make demo` runs)."""
    for r, pdef in ROUND_PARTITIONS.items():
        if not instance.get_dynamic_partitions(pdef.name):
            add_shards(instance, r, RG.initial_shards)


class AddShardsConfig(dg.Config):
    """How many new shards each round gets (defaults: params.yaml round_generations.regenerate_shards)."""

    round1_shards: int = RG.regenerate_shards
    round2_shards: int = RG.regenerate_shards


@dg.op(description="Add new shard partitions to both generation rounds; the sensor requests their runs.")
def add_generation_shards(context: dg.OpExecutionContext, config: AddShardsConfig) -> None:
    for r, n in ((1, config.round1_shards), (2, config.round2_shards)):
        if n < 0:
            raise dg.Failure(f"round{r}_shards must be >= 0, got {n}")
        new = add_shards(context.instance, r, n)
        context.log.info(f"round {r}: added {len(new)} shards {new}")


@dg.job(description="Scheduled regeneration: add new generation shards with fresh seeds (round 2 drawn with the "
        "current hardness model); `generation_shards_sensor` launches their runs.")  # fmt: skip
def regenerate_shards() -> None:
    add_generation_shards()


regeneration_schedule = dg.ScheduleDefinition(
    name="scheduled_regeneration",
    job=regenerate_shards,
    cron_schedule=RG.schedule_cron,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Adds round_generations.regenerate_shards shards per round on the cron in params.yaml. Off by "
    "default: switch it on under Automation in the web UI.",
)


# One job per partitioned asset (a job's assets share one partitioning), and one for the refresh.
SHARD_JOBS = {
    1: dg.define_asset_job("round1_shard", selection=[round1_generations], partitions_def=ROUND_PARTITIONS[1],
                           description="One round-1 generation shard (a partition)."),
    2: dg.define_asset_job("round2_shard", selection=[round2_generations], partitions_def=ROUND_PARTITIONS[2],
                           description="One round-2 generation shard (a partition)."),
}  # fmt: skip
refresh_dataset = dg.define_asset_job(
    "refresh_dataset", selection=[hardness_model, filtered_dataset],
    description="Refit the hardness model and rebuild the filtered dataset from every finished shard.",
)  # fmt: skip


MAX_ATTEMPTS = 3  # runs of one shard (the first and its retries) before the sensor leaves it to a person
IN_FLIGHT = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.SUSPENDED)  # fmt: skip
GAVE_UP = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def shard_runs(instance: dg.DagsterInstance, round_index: int, partition: str) -> tuple[int, int, int]:
    """(runs in flight, runs that failed or were canceled, all runs) of one shard partition of a round,
    whoever launched them: this sensor's job or a backfill from the UI (any run whose asset
    selection holds the round's asset; both rounds name their shards alike)."""
    key, job = dg.AssetKey(f"round{round_index}_generations"), SHARD_JOBS[round_index].name
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": partition}))
    mine = [r for r in runs if (key in r.asset_selection if r.asset_selection is not None else r.job_name == job)]
    return sum(r.status in IN_FLIGHT for r in mine), sum(r.status in GAVE_UP for r in mine), len(mine)


@dg.sensor(
    name="generation_shards_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[*SHARD_JOBS.values(), refresh_dataset],
    description="Requests a run for every generation shard that was added but never materialized (not while a run "
    f"of it, a UI backfill's included, is queued or running; a failed shard again, up to {MAX_ATTEMPTS} runs); "
    "when none is in flight and a shard is newer than filtered_dataset, refreshes hardness_model and "
    "filtered_dataset.",
)
def generation_shards_sensor(context: dg.SensorEvaluationContext) -> list[dg.RunRequest]:
    instance = context.instance
    requests, in_flight, given_up = [], 0, []
    latest_shard = 0.0  # timestamp of the newest shard materialization
    for r, pdef in ROUND_PARTITIONS.items():
        key = dg.AssetKey(f"round{r}_generations")
        if r == 2 and instance.get_latest_materialization_event(hardness_model.key) is None:
            continue  # round 2 needs a hardness model; round 1's shards come first
        done = instance.get_materialized_partitions(key)
        for p in instance.get_dynamic_partitions(pdef.name):
            if p in done:
                continue
            running, failed, runs = shard_runs(instance, r, p)
            if running:
                in_flight += 1
            elif failed >= MAX_ATTEMPTS:
                given_up.append(f"{key.to_user_string()}[{p}]")
            else:  # keys numbered by the runs so far: a retry is a new request, a repeated tick is not
                requests.append(dg.RunRequest(run_key=f"{key.to_user_string()}:{p}:attempt-{runs + 1}",
                                              job_name=SHARD_JOBS[r].name, partition_key=p))  # fmt: skip
        event = instance.get_latest_materialization_event(key)
        latest_shard = max(latest_shard, event.timestamp if event else 0.0)
    if given_up:
        context.log.warning(f"{len(given_up)} shard(s) failed {MAX_ATTEMPTS} runs and are not retried: {given_up} "
                            "(look at their runs; materialize them from the UI once fixed)")  # fmt: skip
    if requests or in_flight:
        return requests
    dataset = instance.get_latest_materialization_event(filtered_dataset.key)
    if latest_shard and (dataset is None or dataset.timestamp < latest_shard):
        return [dg.RunRequest(run_key=f"refresh-dataset:{latest_shard}", job_name=refresh_dataset.name)]
    return []


SCHEDULES = [regeneration_schedule]
SENSORS = [generation_shards_sensor]
JOBS = [regenerate_shards, *SHARD_JOBS.values(), refresh_dataset]
