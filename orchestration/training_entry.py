"""What the training entry points (``train_hmr``, ``train_gst``) share: the MLflow run they log
into, and running either by hand (``--spec spec.json``) or under Dagster Pipes (the spec in the
Pipes extras, logs and a summary message back to the run)."""

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dreamer_core.config.avatars import launcher_problem
from dreamer_core.errors import PipelineInputError
from dreamer_core.tracking import NullTracker, Tracker


def tracker_for(spec: dict[str, Any], rank: int, experiment: str, run_name: str) -> Tracker:
    """Rank 0 logs into the run the asset opened (``mlflow.run_id``), or a new run of
    ``mlflow.experiment`` (default ``experiment``). A tracking store that cannot be reached after
    the retries costs the metrics, not the training: it trains untracked, with a warning."""
    ml = spec.get("mlflow") or {}
    if rank or not ml.get("tracking_uri"):
        return NullTracker()
    from orchestration.resources.tracking import RETRIES, _log, redact

    try:
        return _open_run(ml, experiment, run_name)
    except Exception as exc:  # noqa: BLE001 - any tracking failure (store, network, auth) degrades
        _log.warning("MLflow run for %s not opened after %d tries, training untracked: %s", run_name, RETRIES,
                     redact(str(exc)))  # fmt: skip
        return NullTracker()


def _open_run(ml: dict[str, Any], experiment: str, run_name: str) -> Tracker:
    """Each store call retried on its own (a retried whole would create a second run when only the
    lookup after the creation failed)."""
    from mlflow.tracking import MlflowClient

    from orchestration.resources.tracking import MLflowRun, retried

    client = MlflowClient(tracking_uri=ml["tracking_uri"])
    run_id = ml.get("run_id")
    if not run_id:
        name = ml.get("experiment", experiment)
        exp = retried(client.get_experiment_by_name, name)
        exp_id = exp.experiment_id if exp else retried(client.create_experiment, name)
        run_id = retried(client.create_run, exp_id, tags={"mlflow.runName": run_name}).info.run_id
    run = retried(client.get_run, run_id)
    return MLflowRun(client, run_id, run.info.experiment_id, "")


def training_command(module: str, launcher: str = "") -> list[str]:
    """The command a training asset runs through Pipes: ``python -m module``, or under a launcher
    (``torchrun --nproc_per_node 8 ...``: rank 0 talks to Dagster, every rank trains)."""
    if not launcher:
        return [sys.executable, "-m", module]
    problem = launcher_problem(launcher)  # checked in params.yaml too; here again, right before it runs
    if problem:
        raise PipelineInputError(f"hmr.launcher {launcher!r}: {problem}")
    parts = shlex.split(launcher)
    local = Path(sys.executable).parent / parts[0]
    return [str(local) if local.exists() else parts[0], *parts[1:], "-m", module]


def _pipes_spec() -> dict[str, Any]:
    """The spec from the Pipes context, read without opening the message channel (which belongs
    to rank 0): how the other ranks of a torchrun launched through Pipes get it."""
    from dagster_pipes import PipesDefaultContextLoader, PipesEnvVarParamsLoader

    params = PipesEnvVarParamsLoader().load_context_params()
    with PipesDefaultContextLoader().load_context(params) as data:
        return data["extras"]["spec"]


def entry_main(run: Callable[..., dict[str, Any]], prog: str, doc: str | None, argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", help="JSON spec file (omit when launched through Dagster Pipes)")
    args = parser.parse_args(argv)
    try:
        return _entry(run, parser, args)
    except PipelineInputError as exc:  # bad spec or inputs: one line naming them, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _entry(run: Callable[..., dict[str, Any]], parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    rank = int(os.environ.get("RANK", "0"))
    if os.environ.get("PD_TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["PD_TORCH_THREADS"]))
    under_pipes = PipesEnvVarParamsLoader().is_dagster_pipes_process()
    if under_pipes and rank == 0:
        with open_dagster_pipes() as pipes:
            spec = json.loads(Path(args.spec).read_text()) if args.spec else pipes.extras["spec"]
            summary = run(spec, pipes.log.info)
            pipes.report_custom_message(summary)
        return 0
    if not args.spec and not under_pipes:
        parser.error("--spec is required outside Dagster Pipes")
    summary = run(json.loads(Path(args.spec).read_text()) if args.spec else _pipes_spec())
    if rank == 0:
        print(json.dumps(summary))
    return 0


def finished_summary(out: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a finished checkpoint in ``out`` trained from the same spec and data, if any
    (the summary is written last, so its presence means a complete checkpoint)."""
    summary_path = out / "summary.json"
    if (out / "model.safetensors").exists() and summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if summary.get("fingerprint") == fingerprint:
            return summary
    return None


def publish_checkpoint(tracker: Tracker, out: Path, metrics: dict[str, float],
                       image: tuple[str, bytes] | None = None) -> None:  # fmt: skip
    """A finished training's preview (written atomically next to the checkpoint), metrics and
    checkpoint files, to the MLflow run."""
    from dreamer_core.io import write_bytes_atomic

    if image is not None:
        name, png = image
        write_bytes_atomic(out / name, png)
        if hasattr(tracker, "log_image_bytes"):
            tracker.log_image_bytes(name, png)
    tracker.log_metrics(metrics)
    for name in ("model.safetensors", "config.json"):
        tracker.log_artifact(out / name, "checkpoint")
