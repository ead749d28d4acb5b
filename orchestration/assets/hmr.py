"""Group ``hmr``: the question PoseDreamer asks, in miniature: HMR models trained on rendered,
generated and mixed data with equal step budgets (``hmr_checkpoints``), each by
``python -m orchestration.train_hmr`` through Dagster Pipes. ``benchmark`` scores them."""

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg

from dreamer_core.config import HMRSettings
from dreamer_core.io import write_json_atomic
from orchestration.assets.common import (
    asset_step,
    dvc_meta,
    input_version,
    preview_md,
)
from orchestration.assets.tracked import AssetRun, versioned
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource
from orchestration.settings import HMRCheckpointsConfig
from orchestration.training_entry import training_command


def training_sources(storage: StorageResource) -> dict[str, list[Path]]:
    rendered, generated = storage.asset_dir("reference_renders") / "train", storage.asset_dir("filtered_dataset")
    return {"rendered": [rendered], "generated": [generated], "mixed": [rendered, generated]}


@dg.asset(
    group_name="hmr",
    deps=["reference_renders", "filtered_dataset"],
    kinds={"pytorch", "safetensors"},
    pool="gpu",
    metadata=dvc_meta(params=["seed", "body_model", "hmr"]),
    description="One HMR2-style regressor per training set (rendered: reference_renders train; generated: "
    "filtered_dataset; mixed: both; plus real sets from hmr.real_train), equal step budgets, each trained by "
    "`python -m orchestration.train_hmr` through Dagster Pipes (the same command runs under torchrun); resumes a "
    "killed training.",
)
@asset_step
def hmr_checkpoints(
    context: dg.AssetExecutionContext,
    config: HMRCheckpointsConfig,
    body_model: BodyModelResource,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    settings = config.settings()["hmr"]
    out = storage.asset_dir("hmr_checkpoints")
    inputs = {a: input_version(storage, a) for a in ("reference_renders", "filtered_dataset")}  # fails while partial
    train_sets, sources = _training_sets(storage, settings, body_model)
    _remove_stale_sets(out, train_sets)
    parallel = min(settings.parallel_sets, len(train_sets))
    # Small models on CPU scale poorly past one thread, so training sets side by side (cores split
    # between them) finish sooner than one after another.
    pipes = dg.PipesSubprocessClient(env={"PD_TORCH_THREADS": str(max(1, (os.cpu_count() or 1) // parallel))})
    mlflow.experiment_id(mlflow.client(), "hmr_checkpoints")  # once, before the runs open side by side
    runs: list[Any] = []

    def train(name: str) -> dict[str, Any]:
        spec = {"train_set": name, "sources": [str(p) for p in sources[name]], "out": str(out / name),
                "hmr": settings.to_dict(), "seed": config.seed, "body_model": body_model.settings().to_dict(),
                "device": config.device,  # how to run: not in the checkpoint's fingerprint
                "overlay_folder": str(storage.asset_dir("reference_renders") / "test")}  # fmt: skip
        params = {"hmr": settings, "seed": config.seed, "train_set": name}
        with AssetRun(context, mlflow, dvc, params, inputs) as tracked:
            runs.append(tracked.run)
            tracked.run.set_tags({"train_set": name, "mlflow.runName": f"hmr-{name}-{context.run.run_id[:8]}"})
            spec["mlflow"] = {"tracking_uri": mlflow.uri(), "run_id": tracked.run.run_id}
            context.log.info(f"training HMR on {name} ({', '.join(spec['sources'])})")
            command = training_command("orchestration.train_hmr", settings.launcher)
            messages = pipes.run(context=context, command=command, extras={"spec": spec}).get_custom_messages()
            if not messages:
                raise dg.Failure(f"HMR training on {name} reported no result; see the run's stderr")
            return {**messages[-1], "mlflow_run_url": tracked.run.url}

    with ThreadPoolExecutor(parallel) as pool:
        results = dict(zip(train_sets, pool.map(train, train_sets), strict=True))
    write_json_atomic(out / "summary.json", {n: {k: r[k] for k in ("num_train", "steps", "final_loss")}
                                             for n, r in results.items()})  # fmt: skip
    metadata = {"path": dg.MetadataValue.path(str(out)), "models": dg.MetadataValue.md(_models_table(results)),
                **versioned(context, dvc, runs)}  # fmt: skip
    if (overlay := out / train_sets[0] / "overlay.png").exists():
        metadata["preview"] = preview_md(overlay.read_bytes(), "held-out renders: image | truth | prediction")
    return dg.MaterializeResult(metadata=metadata)


def _remove_stale_sets(out: Path, train_sets: list[str]) -> None:
    """Checkpoints of sets no longer configured go: they must not be benchmarked."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.is_dir() and stale.name not in train_sets:
            shutil.rmtree(stale)


def _training_sets(storage: StorageResource, settings: HMRSettings,
                   body_model: BodyModelResource) -> tuple[list[str], dict[str, list[Any]]]:  # fmt: skip
    """The configured training sets and the shard folders (or ``3dpw:<root>``) each trains on;
    fails on sets that cannot train."""
    sources = {**training_sources(storage), **{name: [src] for name, src in settings.real_train.items()}}
    if settings.real_train and body_model.name != "smpl":
        raise dg.Failure(
            f"hmr.real_train sets {sorted(settings.real_train)} have SMPL labels but body_model.name is "
            f"{body_model.name}: set body_model.name: smpl (and model_dir), or clear hmr.real_train"
        )
    kept = json.loads((storage.asset_dir("filtered_dataset") / "summary.json").read_text())["num_kept"]
    if kept == 0 and {"generated", "mixed"} & set(settings.train_sets):
        raise dg.Failure(
            "filtered_dataset kept no samples, so the generated and mixed sets cannot train: add "
            "generation shards or loosen filtered_dataset thresholds, or drop them from hmr.train_sets"
        )
    return [*settings.train_sets, *settings.real_train], sources


def _models_table(results: dict[str, dict[str, Any]]) -> str:
    return "\n".join(
        ["| train set | samples | steps | final loss | samples/s | reused | MLflow |", "|---|---|---|---|---|---|---|"]
        + [f"| {n} | {r['num_train']} | {r['steps']} | {r['final_loss']:.4f} | {r.get('samples_per_second', '-')} "
           f"| {r['reused']} | [run]({r['mlflow_run_url']}) |" for n, r in results.items()]
    )  # fmt: skip
