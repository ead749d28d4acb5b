"""The demo's closing check summary covers every partition of a partitioned check: a contract broken
in one shard is an ERROR naming that shard, even when a later partition's check passed."""

import dagster as dg

from orchestration.cli import _check_report

PARTS = dg.StaticPartitionsDefinition(["shard-000000", "shard-000001", "shard-000002"])


@dg.asset(partitions_def=PARTS)
def shards(context: dg.AssetExecutionContext) -> None:
    context.log.info(context.partition_key)


@dg.asset_check(asset=shards, partitions_def=PARTS)
def shard_valid(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    if context.partition_key == "shard-000002":
        raise RuntimeError("a check that crashes")
    return dg.AssetCheckResult(passed=context.partition_key != "shard-000000", metadata={"samples": 3})


@dg.asset_check(asset=shards)
def learning_target(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={"ratio": 0.9})


def test_a_failed_partition_is_reported_after_later_partitions_passed(capsys):
    defs = dg.Definitions(assets=[shards], asset_checks=[shard_valid, learning_target])
    instance = dg.DagsterInstance.ephemeral()
    assert _check_report(instance, defs) == 0
    assert "0 passed, 0 warned, 0 failed, 2 not run" in capsys.readouterr().out
    for partition in ("shard-000000", "shard-000001"):  # the failing partition first, a passing one last
        dg.materialize([shards, shard_valid], partition_key=partition, instance=instance)
    assert _check_report(instance, defs) == 1
    out = capsys.readouterr().out
    assert "0 passed, 0 warned, 1 failed, 1 not run" in out
    assert "ERROR shards.shard_valid[shard-000000]: samples=3" in out
    assert "NOT RUN shards.shard_valid[shard-000002]" in out  # some partitions checked, this one never
    dg.materialize([shards, shard_valid], partition_key="shard-000000", selection=[shards], instance=instance)
    dg.materialize([shards, shard_valid, learning_target], partition_key="shard-000002", instance=instance,
                   raise_on_error=False)  # fmt: skip
    assert _check_report(instance, defs) == 1  # shard-000000 rematerialized without its check: still the failure
    out = capsys.readouterr().out
    assert "0 passed, 1 warned, 1 failed, 0 not run" in out and "WARN  shards.learning_target: ratio=0.9" in out
    # The partition that raised and the one that failed are both named.
    assert "ERROR shards.shard_valid[shard-000002]: raised an error" in out
    assert "ERROR shards.shard_valid[shard-000000]: samples=3" in out
