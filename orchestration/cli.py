"""Command line for the pipeline: materialize assets into the repo's Dagster instance, and
keep dvc.yaml in step with the asset graph.

    python -m orchestration.cli materialize --all        # the whole graph (make demo)
    python -m orchestration.cli materialize pose_bank    # one asset (what each DVC stage runs)
    python -m orchestration.cli materialize round1_generations --workers 2   # a local shard backfill
    python -m orchestration.cli add-shards --round1 2    # new generation shards (fresh seeds)
    python -m orchestration.cli status                   # what the Dagster instance holds
    python -m orchestration.cli dvc-yaml [--check]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from orchestration.env import REPO_ROOT, ensure_dagster_home


def _failure_message(result: Any) -> str:
    """Why the first failed step failed: a ``dg.Failure``'s description (bad input: names the
    input and the fix), else the innermost error without its class path."""
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            return data.user_failure_data.description
        err = data.error
        while err is not None and err.cause is not None:
            err = err.cause
        return re.sub(r"^[\w.]+: ", "", err.message.strip(), count=1) if err is not None else "step failed"
    return ""


RunOutcome = tuple[str, bool, str, list[str], str, list[str]]


def _warning_line(check: str, metadata: dict[str, Any]) -> str:
    """One line for a check that warned: its name and its numbers (what a target missed by)."""
    parts = []
    for name, entry in metadata.items():
        value = getattr(entry, "value", entry)
        if isinstance(value, float):
            parts.append(f"{name}={value:.4g}")
        elif isinstance(value, int | str | bool) and len(str(value)) <= 60:
            parts.append(f"{name}={value}")
    return f"{check}: {', '.join(parts)}" if parts else check


def _run_one(key: str, partition: str | None, threads: int = 0) -> RunOutcome:
    """Materialize one asset (one partition) in this process: (label, success, run id, failed
    checks, failure message, warnings of the checks that warned)."""
    ensure_dagster_home()
    import dagster as dg

    from orchestration.definitions import ASSETS, CHECKS, RESOURCES

    if threads:
        import torch

        torch.set_num_threads(threads)  # workers share the cores instead of oversubscribing them
    label = key if partition is None else f"{key}[{partition}]"
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=[key],
        partition_key=partition,
        instance=dg.DagsterInstance.get(),
        resources=RESOURCES,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        raise_on_error=False,
    )
    bad_checks, warned = [], []
    for e in result.all_events:
        data = e.asset_check_evaluation_data if e.event_type_value == "ASSET_CHECK_EVALUATION" else None
        if data is not None and not data.passed:
            if data.severity == dg.AssetCheckSeverity.WARN:  # a learning target not met: reported, not fatal
                warned.append(_warning_line(f"{label}.{data.check_name}", dict(data.metadata)))
                print(f"  asset check warning: {warned[-1]}", file=sys.stderr)
            else:
                bad_checks.append(data.check_name)
    message = "" if result.success else _failure_message(result)
    return label, result.success, result.run_id, bad_checks, message, warned


def materialize(keys: list[str], select_all: bool, partitions: list[str] | None = None, workers: int = 1,
                missing: bool = False) -> int:  # fmt: skip
    """Materialize assets in dependency order; a partitioned asset runs once per partition (all
    of them unless ``partitions`` names some). Generation rounds with no shard yet get
    ``round_generations.initial_shards``. With ``workers`` > 1 the partitions of one asset run in
    that many processes at once (a local backfill; each run writes only its own shard). With
    ``missing`` only what the instance has no materialization of yet runs: a killed or failed
    backfill is finished without redoing its done partitions (whether a done one is stale, after a
    change of params or code, is not asked: run without it then)."""
    ensure_dagster_home()
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.schedules import ensure_initial_shards

    graph = defs.resolve_asset_graph()
    known = [k.to_user_string() for k in graph.toposorted_asset_keys]
    if select_all:
        keys = known
    unknown = [k for k in keys if k not in known]
    if unknown or not keys:
        print(f"unknown or no asset keys {unknown}; known: {known}", file=sys.stderr)
        return 2
    instance = dg.DagsterInstance.get()
    ensure_initial_shards(instance)
    failed: list[str] = []
    warned: list[str] = []
    times: list[tuple[str, int, float]] = []
    code = 0
    for key in [k for k in known if k in keys]:
        started = time.perf_counter()
        pdef = graph.get(dg.AssetKey(key)).partitions_def
        runs = [None] if pdef is None else (partitions or pdef.get_partition_keys(dynamic_partitions_store=instance))
        if missing:
            runs = _not_done(instance, dg.AssetKey(key), runs, pdef)
            if not runs:
                continue
        if workers > 1 and len(runs) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                results = list(pool.map(_run_one, [key] * len(runs), runs, [threads] * len(runs)))
        else:
            results = [_run_one(key, partition) for partition in runs]
        times.append((key, len(runs), time.perf_counter() - started))
        for label, success, run_id, bad_checks, message, warnings in results:
            print(f"materialized {label}: {'ok' if success else 'FAILED'} (run {run_id})", flush=True)
            if message:
                print(f"error: {label}: {message}", file=sys.stderr, flush=True)
            if bad_checks:
                print(f"  failed asset checks: {bad_checks}", file=sys.stderr)
            if not success or bad_checks:
                failed.append(label)
            warned.extend(warnings)
        if any(not r[1] for r in results):
            print(f"stopping: {key} failed; its downstream assets were not run", file=sys.stderr)
            code = 1
            break
    _time_table(times)
    _summary(failed, warned)
    return code or (1 if failed else 0)


def _not_done(instance: Any, key: Any, runs: list[str | None], pdef: Any) -> list[str | None]:
    """The runs of ``runs`` (partition keys, or [None] for an unpartitioned asset) whose latest
    attempt did not materialize: never run, failed, or killed (a run killed while rewriting a
    done partition leaves it unfinished, and so it runs again); says how many were skipped."""
    import dagster as dg

    if runs == [None]:  # done: materialized by the run that last planned it (a later killed run planned it too)
        event, planned = (
            instance.get_latest_materialization_event(key),
            instance.get_latest_planned_materialization_info(key),
        )
        done = {None} if event is not None and (planned is None or planned.run_id == event.run_id) else set()
    else:
        status = instance.get_status_by_partition(key, [r for r in runs if r], pdef) or {}
        done = {r for r, s in status.items() if s == dg.AssetPartitionStatus.MATERIALIZED}
    todo = [r for r in runs if r not in done]
    if len(todo) < len(runs):
        print(f"{key.to_user_string()}: {len(runs) - len(todo)} of {len(runs)} done, skipped (--missing)")
    return todo


def _time_table(times: list[tuple[str, int, float]]) -> None:
    """Wall seconds per asset (all its partitions, process starts included), slowest first: where
    a run's time went, so the step to speed up is the one at the top."""
    if not times:
        return
    total = sum(t for _, _, t in times)
    width = max(len(k) for k, _, _ in times)
    print(f"\n{'asset':<{width}}  runs  seconds  share")
    for key, runs, seconds in sorted(times, key=lambda x: -x[2]):
        print(f"{key:<{width}}  {runs:>4}  {seconds:>7.1f}  {seconds / total:>5.1%}")
    print(f"{'total':<{width}}  {sum(r for _, r, _ in times):>4}  {total:>7.1f}")


def _summary(failed: list[str], warned: list[str]) -> None:
    """The closing lines of a run: data contracts that failed (the exit code says so) and every
    learning target that warned (listed, not fatal: the data are sound, a model missed a target)."""
    if warned:
        print(f"\n{len(warned)} asset check(s) warned (learning targets not met; the data contracts hold):")
        for line in warned:
            print(f"  WARN {line}")
    else:
        print("\nno asset check warned: every learning target was met")
    if failed:
        print(f"{len(failed)} materialization(s) failed or broke a data contract: {', '.join(failed)}")
    sys.stdout.flush()


def status() -> int:
    """What the Dagster instance knows: latest materialization of each asset and its key metadata."""
    ensure_dagster_home()
    import dagster as dg

    from orchestration.definitions import defs

    instance = dg.DagsterInstance.get()
    shown = (
        "path",
        "num_poses",
        "nn_dist_mm",
        "nn_dist_random_mm",
        "num_train",
        "num_val",
        "num_test",
        "num_multiview_subjects",
        "views_per_subject",
        "num_samples",
        "heldout_mae",
        "baseline_mae",
        "heldout_r2",
        "num_raw",
        "num_kept",
        "round1_mean_oks",
        "round2_mean_oks",
        "round1_mean_predicted_oks",
        "round2_mean_predicted_oks",
        "seconds",
        "dvc_hash",
        "mlflow_run_url",
    )
    missing = 0
    for key in defs.resolve_asset_graph().toposorted_asset_keys:
        event = instance.get_latest_materialization_event(key)
        if event is None:
            print(f"{key.to_user_string()}: not materialized")
            missing += 1
            continue
        mat = event.asset_materialization
        print(f"{key.to_user_string()}: materialized by run {event.run_id[:8]}")
        for name in shown:
            if mat is not None and name in mat.metadata:
                value = mat.metadata[name].value
                print(f"  {name}: {value:.4g}" if isinstance(value, float) else f"  {name}: {value}")
    failed = _check_report(instance, defs)
    return 1 if missing or failed else 0


def _latest_evaluations(instance: Any, graph: Any, check_key: Any) -> list[tuple[str | None, Any]]:
    """(partition, latest record) of one check: one pair for an unpartitioned check, one per
    current partition for a partitioned one (a partition never checked has record None)."""
    from dagster._core.event_api import PartitionKeyFilter

    pdef = graph.get(check_key).partitions_def
    if pdef is None:
        return [(None, instance.get_latest_asset_check_evaluation_record(check_key))]
    storage = instance.event_log_storage
    pairs = []
    for partition in pdef.get_partition_keys(dynamic_partitions_store=instance):
        latest = storage.get_latest_asset_check_execution_by_key([check_key], PartitionKeyFilter(key=partition))
        pairs.append((partition, latest.get(check_key)))
    return pairs


def _evaluation(instance: Any, record: Any) -> tuple[str, Any]:
    """One record's outcome: passed / warned / failed / raised / not run, with its evaluation data."""
    import dagster as dg
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    if record is not None and record.status == Status.PLANNED:
        run = instance.get_run_by_id(record.run_id)
        if run is not None and run.is_finished:  # planned, never evaluated: the check raised
            return "raised", record
    if record is None or record.status not in (Status.SUCCEEDED, Status.FAILED) or record.event is None:
        return "not run", None
    data = record.event.dagster_event.asset_check_evaluation_data
    if data.passed:
        return "passed", data
    return ("warned" if data.severity == dg.AssetCheckSeverity.WARN else "failed"), data


def _check_report(instance: Any, defs: Any) -> int:
    """The latest evaluation of every asset check (of every partition, for a partitioned check),
    summed up, then each check that warned (a learning target missed) or failed (a data contract
    broken). A partitioned check counts once: failed if any partition failed. Returns the number
    that failed."""
    counts = {"passed": 0, "warned": 0, "failed": 0, "not run": 0}
    lines: list[str] = []
    graph = defs.resolve_asset_graph()
    for check_key in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string()):
        label = f"{check_key.asset_key.to_user_string()}.{check_key.name}"
        outcomes = [(p, *_evaluation(instance, r)) for p, r in _latest_evaluations(instance, graph, check_key)]
        outcomes = outcomes or [(None, "not run", None)]  # a dynamic partition set with no partition yet
        worst = next(w for w in ("raised", "failed", "warned", "not run", "passed") if any(o[1] == w for o in outcomes))
        counts["failed" if worst == "raised" else worst] += 1
        for status in ("raised", "failed", "warned"):  # every partition that raised or failed is named
            hits = [(p, data) for p, st, data in outcomes if st == status]
            if not hits or (status == "warned" and worst != "warned"):
                continue
            where = f"[{', '.join(str(p) for p, _ in hits)}]" if hits[0][0] is not None else ""
            if status == "raised":
                lines.append(f"  ERROR {label}{where}: raised an error (see run {hits[0][1].run_id[:8]})")
            else:
                tag = "WARN " if status == "warned" else "ERROR"
                lines.append(f"  {tag} {_warning_line(label + where, dict(hits[0][1].metadata))}")
        missing = [p for p, st, _ in outcomes if st == "not run" and p is not None]
        if missing and len(missing) < len(outcomes):  # some partitions checked, these never were
            lines.append(f"  NOT RUN {label}[{', '.join(missing)}]")
    print("\nasset checks (latest evaluation): " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    if lines:
        print("learning targets not met (WARN) and broken data contracts (ERROR):")
        print("\n".join(lines))
    return counts["failed"]


def add_shards(round1: int, round2: int) -> int:
    """What the regenerate_shards job does, from the shell: new shard partitions with fresh seeds."""
    ensure_dagster_home()
    import dagster as dg

    from orchestration import schedules

    instance = dg.DagsterInstance.get()
    for r, n in ((1, round1), (2, round2)):
        print(f"round {r}: added {schedules.add_shards(instance, r, n)}")
    return 0


def dvc_yaml(check: bool) -> int:
    from orchestration.definitions import defs
    from orchestration.dvc_yaml import render

    path = REPO_ROOT / "dvc.yaml"
    text = render(defs)
    if check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print("dvc.yaml is out of date with the asset graph: run `python -m orchestration.cli dvc-yaml`",
                  file=sys.stderr)  # fmt: skip
            return 1
        print("dvc.yaml matches the asset graph")
        return 0
    Path(path).write_text(text)
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("materialize", help="materialize assets into the Dagster instance")
    m.add_argument("keys", nargs="*")
    m.add_argument("--all", action="store_true", help="the whole asset graph")
    m.add_argument("--partition", action="append", help="only this partition of partitioned assets (repeatable)")
    m.add_argument("--workers", type=int, default=1, help="processes running partitions of one asset at once")
    m.add_argument(
        "--missing",
        action="store_true",
        help="only partitions (and assets) not materialized yet: finish a killed or failed backfill",
    )
    sub.add_parser("status", help="latest materialization of every asset in the Dagster instance")
    a = sub.add_parser("add-shards", help="add generation shard partitions (then materialize them)")
    a.add_argument("--round1", type=int, default=0)
    a.add_argument("--round2", type=int, default=0)
    sub.add_parser("settings", help="the active profile's effective settings, each with its doc line")
    d = sub.add_parser("dvc-yaml", help="write dvc.yaml from the asset graph")
    d.add_argument("--check", action="store_true", help="fail if dvc.yaml differs from the asset graph")
    args = parser.parse_args(argv)
    try:
        if args.command == "materialize":
            return materialize(args.keys, args.all, args.partition, args.workers, args.missing)
        if args.command == "status":
            return status()
        if args.command == "add-shards":
            return add_shards(args.round1, args.round2)
        if args.command == "settings":
            from dreamer_core.config import load_settings
            from dreamer_core.config.listing import settings_yaml

            print(settings_yaml(load_settings()), end="")
            return 0
        return dvc_yaml(args.check)
    except Exception as exc:  # the boundary: one clear line for input errors
        from dreamer_core.errors import PipelineInputError

        if isinstance(exc, PipelineInputError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
