"""Group ``bodies``: the pose bank every later asset draws from."""

import json

import dagster as dg
import numpy as np

from dreamer_core.bodies import BodyModel
from dreamer_core.io import publish_folder, staging_folder, write_bytes_atomic
from dreamer_core.poses.anatomical import within_limits
from dreamer_core.poses.bank import (
    SUMMARY_FILE,
    PoseBank,
    build_pose_bank,
    read_pose_bank,
    write_pose_bank,
)
from dreamer_core.viz import skeleton_grid_png
from orchestration.assets.common import asset_step, dvc_meta
from orchestration.assets.tracked import AssetRun
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource
from orchestration.settings import PoseBankConfig

PREVIEW_FILE = "preview.png"


@dg.asset(
    group_name="bodies",
    kinds={"python", "parquet"},
    metadata=dvc_meta(params=["seed", "body_model", "pose_bank"]),
    description="Diverse body poses + shapes (parquet + npz): anatomical families and AMASS, "
    "farthest-point selected in root-aligned joint space.",
)
@asset_step
def pose_bank(
    context: dg.AssetExecutionContext,
    config: PoseBankConfig,
    body_model: BodyModelResource,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    settings = config.settings()["pose_bank"]
    body = body_model.load()
    out_dir = storage.asset_dir("pose_bank")
    params = {"pose_bank": settings, "body_model": body_model.settings(), "seed": config.seed}
    with AssetRun(context, mlflow, dvc, params) as tracked:
        bank = build_pose_bank(settings, body, config.seed, progress=context.log.info)
        for err in bank.errors:
            context.log.warning(err)
        stats = bank.stats
        stats.update(configured_num_poses=settings.num_poses, seed=config.seed)
        stage = staging_folder(out_dir)  # the bank's files built beside and swapped in as one unit
        write_pose_bank(bank, stage)
        png = _preview(body, bank)
        write_bytes_atomic(stage / PREVIEW_FILE, png)
        publish_folder(stage, out_dir)
        tracked.run.log_metrics(
            {
                "num_poses": stats["num_poses"],
                "nn_dist_mm": stats["nn_dist_mm"],
                "nn_dist_random_mm": stats["nn_dist_random_mm"],
                "build_seconds": stats["seconds"],
            }
        )
        tracked.run.log_image_bytes(PREVIEW_FILE, png)
        tracked.run.log_artifact(out_dir / SUMMARY_FILE)
        context.log.info(
            f"pose bank: {stats['num_poses']} poses, NN distance {stats['nn_dist_mm']:.1f} mm "
            f"(random draw {stats['nn_dist_random_mm']:.1f} mm) in {stats['seconds']:.1f} s"
        )
        return tracked.result(
            out_dir, (png, "pose bank"), num_poses=stats["num_poses"], nn_dist_mm=float(stats["nn_dist_mm"]),
            nn_dist_random_mm=float(stats["nn_dist_random_mm"]), body_model=body.name,
            **{f"count_{k}": v for k, v in stats["counts_per_source"].items()},
            counts_per_family=dg.MetadataValue.json(stats["counts_per_family"]),
        )  # fmt: skip


def _preview(body: BodyModel, bank: PoseBank) -> bytes:
    """The first pose of each family, then more, posed with their root orientation."""
    order = np.argsort(bank.table["family"].to_numpy(), kind="stable")[:: max(1, len(bank) // 24)][:24]
    joints = _posed_skeletons(body, bank, order)
    return skeleton_grid_png(joints, [f"{bank.table.pose_id[i]}\n{bank.table.family[i]}" for i in order])


def _posed_skeletons(body: BodyModel, bank: PoseBank, rows: np.ndarray) -> np.ndarray:
    import torch

    a = bank.arrays
    with torch.no_grad():
        out = body.forward({
            "global_orient": torch.as_tensor(a["global_orient"][rows]),
            "body_pose": torch.as_tensor(a["body_pose"][rows]),
            "shape": torch.as_tensor(a["shape"][rows]),
        })  # fmt: skip
    return out.skeleton.numpy()


def _load(storage: StorageResource) -> tuple[PoseBank, dict]:
    out_dir = storage.asset_dir("pose_bank")
    return read_pose_bank(out_dir), json.loads((out_dir / SUMMARY_FILE).read_text())


@dg.asset_check(asset=pose_bank, description="No NaN or inf in any pose or shape array.")
def pose_bank_no_nan(storage: StorageResource) -> dg.AssetCheckResult:
    bank, _ = _load(storage)
    bad = {k: int((~np.isfinite(v)).sum()) for k, v in bank.arrays.items() if v.dtype.kind == "f"}
    return dg.AssetCheckResult(passed=sum(bad.values()) == 0, metadata={"non_finite": bad})


@dg.asset_check(asset=pose_bank, description="Rotations within [0, pi], shapes within the body model's "
                "bounds, anatomical poses within the joint limits.")  # fmt: skip
def pose_bank_within_limits(storage: StorageResource, body_model: BodyModelResource) -> dg.AssetCheckResult:
    bank, _ = _load(storage)
    a = bank.arrays
    lo, hi = body_model.load().shape_bounds
    angle_ok = bool((np.linalg.norm(a["body_pose"], axis=-1) <= np.pi + 1e-4).all())
    shape_ok = bool(((a["shape"] >= lo) & (a["shape"] <= hi)).all())
    anat = a["source"] == "anatomical"
    joint_ok = within_limits(a["body_pose"][anat])
    return dg.AssetCheckResult(
        passed=angle_ok and shape_ok and bool(joint_ok.all()),
        metadata={
            "angles_ok": angle_ok,
            "shapes_ok": shape_ok,
            "anatomical_rows_outside_limits": int((~joint_ok).sum()),
        },  # fmt: skip
    )


@dg.asset_check(asset=pose_bank, description="Row count equals the configured num_poses; ids unique.")
def pose_bank_count(storage: StorageResource) -> dg.AssetCheckResult:
    bank, summary = _load(storage)
    n, want = len(bank), summary.get("configured_num_poses")
    unique = bank.table.pose_id.is_unique
    return dg.AssetCheckResult(
        passed=n == want and unique, metadata={"rows": n, "configured": want, "unique_ids": unique}
    )


@dg.asset_check(asset=pose_bank, description="Mean nearest-neighbour distance at least a random draw's.")
def pose_bank_diversity(storage: StorageResource) -> dg.AssetCheckResult:
    _, summary = _load(storage)
    nn, rnd = summary["nn_dist_mm"], summary["nn_dist_random_mm"]
    return dg.AssetCheckResult(passed=nn >= rnd, metadata={"nn_dist_mm": nn, "nn_dist_random_mm": rnd})


CHECKS = [pose_bank_no_nan, pose_bank_within_limits, pose_bank_count, pose_bank_diversity]
__all__ = ["CHECKS", "pose_bank"]
