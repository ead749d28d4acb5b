"""The code location: every asset, check and resource of the pipeline (``defs``)."""

from __future__ import annotations

import dagster as dg

from orchestration import schedules
from orchestration.assets import benchmark, bodies, dataset, detector, generation, gst, hmr, mining, renders
from orchestration.executors import executor_from_env
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource

ASSETS = [
    bodies.pose_bank,
    renders.reference_renders,
    renders.control_renders,
    detector.pose_detector,
    generation.generator,
    generation.dpo_pairs,
    generation.dpo_generator,
    mining.round1_generations,
    mining.hardness_model,
    mining.round2_generations,
    dataset.filtered_dataset,
    hmr.hmr_checkpoints,
    gst.gst_checkpoint,
    benchmark.benchmark_scores,
]
CHECKS = [
    *bodies.CHECKS, *renders.CHECKS, *detector.CHECKS, *generation.CHECKS, *mining.CHECKS, *dataset.CHECKS,
    *benchmark.CHECKS,
]  # fmt: skip

RESOURCES = {
    "storage": StorageResource(),
    "body_model": BodyModelResource(),
    "mlflow": MLflowResource(),
    "dvc": DVCResource(),
}

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=schedules.JOBS,
    schedules=schedules.SCHEDULES,
    sensors=schedules.SENSORS,
    resources=RESOURCES,
    executor=executor_from_env(),
)
