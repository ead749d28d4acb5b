"""Group ``renders``: reference renders (textured, the rendering-based baseline and GST's views)
and control renders (PNCC conditions for the generator), both from the pose bank."""

import json
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np

from dreamer_core.config import ReferenceRendersSettings, RenderSettings
from dreamer_core.datasets.build import (
    BuildReport,
    ShardWriter,
    iter_multiview,
    iter_samples,
    read_manifest,
    render_samples,
    write_manifest,
    write_samples,
)
from dreamer_core.datasets.shards import Sample, iter_folder, remove_shards, shard_name
from dreamer_core.images import coco_keypoints
from dreamer_core.io import write_json_atomic
from dreamer_core.poses.bank import PoseBank, read_pose_bank
from dreamer_core.poses.splits import SPLITS
from dreamer_core.threads import fixed_threads
from dreamer_core.viz import sample_grid_png
from orchestration.assets.common import dvc_meta, file_hash, input_errors, preview_md, publish_png
from orchestration.assets.shard_checks import shard_partition_check
from orchestration.assets.tracked import AssetRun
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource
from orchestration.settings import SETTINGS, ControlRendersConfig, ReferenceRendersConfig

CONTROL_PARTITIONS = dg.StaticPartitionsDefinition(
    [shard_name(i).removesuffix(".tar") for i in range(SETTINGS.control_renders.num_shards)]
)


def _preview(samples: list[Sample], n: int = 6) -> bytes:
    picks = samples[:: max(1, len(samples) // n)][:n]
    rows = [[s.image if s.image is not None else s.control, s.control, s.mask] for s in picks]
    return sample_grid_png(rows, [np.asarray(s.labels["keypoints_2d"]) for s in picks])


@dg.asset(
    group_name="renders",
    deps=["pose_bank"],
    kinds={"python", "warp"},
    pool="gpu",  # Warp ray casting runs on the run's device
    metadata=dvc_meta(params=["seed", "body_model", "render", "reference_renders"]),
    description="Textured, lit renders of posed bodies over procedural backgrounds with exact labels: "
    "train / val / test (the pose bank's split of pose ids) / multiview (calibrated rings; held-out subjects are "
    "test poses).",
)
@input_errors
def reference_renders(
    context: dg.AssetExecutionContext,
    config: ReferenceRendersConfig,
    body_model: BodyModelResource,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    settings = config.settings()
    rs, ref = settings["render"], settings["reference_renders"]
    body, renderer = body_model.load_with_renderer(config.torch_device())
    bank = read_pose_bank(storage.asset_dir("pose_bank"))
    out = storage.asset_dir("reference_renders")
    pools = _split_pools(bank, ref)
    for split in (*SPLITS, "multiview"):  # a smaller rerun must not leave shards of a larger one behind
        remove_shards(out / split)
    inputs = {"pose_bank": file_hash(storage, "pose_bank", "summary.json")}
    with AssetRun(context, mlflow, dvc, {**settings, "seed": config.seed}, inputs) as tracked:
        report, t0 = BuildReport(), time.perf_counter()
        manifest, previews = [], {}
        for split in SPLITS:
            n, pool = getattr(ref, f"num_{split}"), pools[split]
            context.log.info(f"rendering {split}: {n} samples from {len(pool)} poses")
            samples = iter_samples(body, renderer, bank, pool[np.arange(n) % len(pool)], rs, config.seed,
                                   f"reference-{split}", f"{split}", True, report, split)  # fmt: skip
            picks, writer = _Picks(n), ShardWriter(out / split, ref.samples_per_shard, split)
            for sample in samples:  # each shard is published as it fills: one shard in memory, never a split
                writer.add(picks.see(sample))
            manifest += writer.close()
            report.written += len(writer.rows)
            previews[split] = _preview(picks.samples)
        manifest += _multiview(context, body, renderer, bank, pools, rs, ref, config.seed, report, out, previews)
        write_manifest(out / "manifest.parquet", manifest)
        summary = _summary(manifest, ref, rs, report, time.perf_counter() - t0)
        write_json_atomic(out / "summary.json", {k: v for k, v in summary.items() if k != "seconds"})
        for split, png in previews.items():
            publish_png(out, f"preview_{split}.png", png, tracked.run)
        rate = report.written / max(summary["seconds"], 1e-9)
        tracked.run.log_metrics({**{f"num_{k}": summary[f"num_{k}"] for k in SPLITS}, "samples_per_second": rate,
                                 "skipped_camera_draws": sum(report.skipped.values())})  # fmt: skip
        context.log.info(f"reference renders: {report.written} samples in {summary['seconds']:.1f} s; "
                         f"skipped {dict(report.skipped)}")  # fmt: skip
        values = {**summary, "skipped": dg.MetadataValue.json(summary["skipped"])}
        return tracked.result(out, (previews["train"], "train: image | control | mask | keypoints"), **values,
                              samples_per_second=round(rate, 1),
                              preview_multiview=preview_md(previews["multiview"], "multiview"))  # fmt: skip


def _split_pools(bank: PoseBank, ref: ReferenceRendersSettings) -> dict[str, np.ndarray]:
    """The pose bank's rows per split (made once by the bank, read everywhere), checked for size."""
    pools = {split: bank.rows(split) for split in SPLITS}
    short = len(pools["train"]) < ref.multiview_subjects - ref.multiview_heldout
    if min(len(p) for p in pools.values()) == 0 or len(pools["test"]) < ref.multiview_heldout or short:
        raise dg.Failure(f"pose bank of {len(bank)} poses is too small for its train/val/test split "
                         f"({ {k: len(v) for k, v in pools.items()} }); grow pose_bank")  # fmt: skip
    return pools


def _multiview(context: dg.AssetExecutionContext, body: Any, renderer: Any, bank: PoseBank,
               pools: dict[str, np.ndarray], rs: RenderSettings, ref: ReferenceRendersSettings, seed: int,
               report: BuildReport, out: Path, previews: dict[str, bytes]) -> list[dict[str, Any]]:  # fmt: skip
    """Calibrated camera rings around training subjects and (the held-out ones) test poses."""
    n_sub, n_held = ref.multiview_subjects, ref.multiview_heldout
    subjects = np.concatenate([pools["train"][: n_sub - n_held], pools["test"][:n_held]])
    heldout = np.arange(len(subjects)) >= n_sub - n_held
    context.log.info(f"rendering multiview: {n_sub} subjects x {ref.views_per_ring * len(ref.elevations_deg)} views")
    views = iter_multiview(body, renderer, bank, subjects, heldout, rs, ref.views_per_ring, ref.elevations_deg,
                           ref.multiview_radius, seed, report)  # fmt: skip
    first_ring: list[Sample] = []
    per_subject = ref.views_per_ring * len(ref.elevations_deg)  # a shard holds whole subjects (GST streams them)
    writer = ShardWriter(out / "multiview", max(1, ref.samples_per_shard // per_subject) * per_subject, "multiview")
    for sample, extra in views:
        if len(first_ring) < ref.views_per_ring:
            first_ring.append(sample)
        writer.add(sample, extra)
    previews["multiview"] = _preview(first_ring, n=ref.views_per_ring)
    return writer.close()


class _Picks:
    """The samples a preview shows, picked as they stream past: every (n // count)-th of the n
    planned, the picks ``_preview`` makes from the whole list when no sample was dropped."""

    def __init__(self, n: int, count: int = 6) -> None:
        self.step, self.count, self.seen, self.samples = max(1, n // count), count, 0, []

    def see(self, sample: Sample) -> Sample:
        if self.seen % self.step == 0 and len(self.samples) < self.count:
            self.samples.append(sample)
        self.seen += 1
        return sample


def _summary(manifest: list[dict[str, Any]], ref: ReferenceRendersSettings, rs: RenderSettings,
             report: BuildReport, seconds: float) -> dict[str, Any]:  # fmt: skip
    count = Counter(r["split"] for r in manifest)
    return {
        "num_train": count["train"], "num_val": count["val"], "num_test": count["test"],
        "num_multiview_subjects": ref.multiview_subjects,
        "views_per_subject": ref.views_per_ring * len(ref.elevations_deg),
        "skipped": dict(report.skipped), "seconds": round(seconds, 1), "image_size": rs.image_size,
    }  # fmt: skip


@dg.asset(
    group_name="renders",
    deps=["pose_bank"],
    partitions_def=CONTROL_PARTITIONS,
    kinds={"python", "warp"},
    pool="gpu",  # Warp ray casting runs on the run's device
    metadata=dvc_meta(params=["seed", "body_model", "render", "control_renders"]),
    description="Per shard: one PNCC control image (+ mask, depth, labels) per pose-bank row and camera draw.",
)
@input_errors
@fixed_threads()  # a shard's bytes must not depend on the process's torch thread count (body model included)
def control_renders(
    context: dg.AssetExecutionContext,
    config: ControlRendersConfig,
    body_model: BodyModelResource,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    settings = config.settings()
    rs, ctl = settings["render"], settings["control_renders"]
    shard = context.partition_key
    index = int(shard.rsplit("-", 1)[1])
    body, renderer = body_model.load_with_renderer(config.torch_device())
    bank = read_pose_bank(storage.asset_dir("pose_bank"))
    out = storage.asset_dir("control_renders")
    n = ctl.samples_per_shard
    train_rows = bank.rows("train")  # controls feed generator tuning and DPO pairs: training poses only
    if len(train_rows) == 0:
        raise dg.Failure(f"pose bank of {len(bank)} poses has no training pose; grow pose_bank")
    rows = train_rows[(np.arange(n) + index * n) % len(train_rows)]  # walks the training poses shard by shard
    # Shards beyond the configured partitions (left by a config with more shards) would be read as data.
    remove_shards(out, keep=set(CONTROL_PARTITIONS.get_partition_keys()))
    inputs = {"pose_bank": file_hash(storage, "pose_bank", "summary.json")}
    with AssetRun(context, mlflow, dvc, {**settings, "seed": config.seed}, inputs) as tracked:
        report, t0 = BuildReport(), time.perf_counter()
        samples = render_samples(body, renderer, bank, rows, rs, config.seed, f"control-{shard}", f"s{index:06d}",
                                 False, report, shard)  # fmt: skip
        samples = [Sample(s.key, None, s.control, s.mask, s.labels, s.depth) for s in samples]
        write_manifest(out / f"manifest-{shard}.parquet", write_samples(out, samples, n, "", first_shard=index))
        seconds = time.perf_counter() - t0
        png = _preview(samples)
        publish_png(out, f"preview-{shard}.png", png, tracked.run)
        tracked.run.log_metrics({"num_samples": len(samples), "samples_per_second": len(samples) / max(seconds, 1e-9)})
        context.log.info(f"{shard}: {len(samples)} control samples in {seconds:.1f} s; skipped {dict(report.skipped)}")
        return tracked.result(out / f"{shard}.tar", (png, "control | control | mask | keypoints"),
                              num_samples=len(samples), skipped=dg.MetadataValue.json(dict(report.skipped)),
                              seconds=round(seconds, 1))  # fmt: skip


def _validate_samples(samples: Iterable[Sample]) -> tuple[int, float]:
    """Count samples (each read with hash verification by the caller's reader) and the fraction of
    visible COCO keypoints that fall inside the body mask (labels agree with pixels)."""
    n, inside, total = 0, 0, 0
    for s in samples:
        n += 1
        kp = coco_keypoints(s.labels)
        vis = kp[kp[:, 2] == 2]
        cols, rows = vis[:, 0].astype(int), vis[:, 1].astype(int)
        inside += int((s.mask[rows, cols] > 0).sum())
        total += len(vis)
    return n, inside / max(total, 1)


def _validate_folder(folder: Path) -> tuple[int, float]:
    return _validate_samples(iter_folder(folder))


@dg.asset_check(asset=reference_renders, description="Every shard reads back with its hash; counts match; "
                "visible keypoints lie on the body mask.")  # fmt: skip
def reference_renders_valid(storage: StorageResource) -> dg.AssetCheckResult:
    out = storage.asset_dir("reference_renders")
    summary = json.loads((out / "summary.json").read_text())
    manifest = read_manifest(out)
    counts = {split: _validate_folder(out / split) for split in (*SPLITS, "multiview")}
    expected = {"train": summary["num_train"], "val": summary["num_val"], "test": summary["num_test"],
                "multiview": summary["num_multiview_subjects"] * summary["views_per_subject"]}  # fmt: skip
    ok_counts = all(counts[s][0] == expected[s] == int((manifest.split == s).sum()) for s in expected)
    on_mask = min(c[1] for c in counts.values())
    misplaced = _misplaced_poses(manifest, read_pose_bank(storage.asset_dir("pose_bank")))
    return dg.AssetCheckResult(
        passed=ok_counts and on_mask >= 0.97 and misplaced == 0,
        metadata={
            "counts": {s: c[0] for s, c in counts.items()},
            "keypoints_on_mask": on_mask,
            "samples_of_another_split": misplaced,
        },  # fmt: skip
    )


def _misplaced_poses(manifest: Any, bank: Any) -> int:
    """Samples whose pose belongs to another split than the one they were written to: train /
    val / test samples must hold their split's poses; multi-view training subjects train poses,
    held-out subjects test poses."""
    split_of = dict(zip(bank.arrays["pose_id"].tolist(), bank.arrays["split"].tolist(), strict=True))
    want = manifest.split.astype(str).to_numpy().copy()
    mv = want == "multiview"
    want[mv] = np.where(manifest.heldout[mv].astype(bool), "test", "train")
    have = np.array([split_of.get(p, "missing") for p in manifest.pose_id])
    return int((want != have).sum())


@dg.asset_check(asset=control_renders, partitions_def=CONTROL_PARTITIONS,
                description="This partition's shard reads back with its hash and holds exactly the keys of its "
                "index entry and manifest part; visible keypoints lie on the body mask; every pose is a training "
                "pose. Reads this partition's files only.")  # fmt: skip
def control_renders_valid(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    def on_mask(samples: Iterable[Sample]) -> tuple[dict[str, Any], bool]:
        fraction = _validate_samples(samples)[1]
        return {"keypoints_on_mask": fraction}, fraction >= 0.97

    return shard_partition_check(storage, "control_renders", context.partition_key, on_mask)


CHECKS = [reference_renders_valid, control_renders_valid]
