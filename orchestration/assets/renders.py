"""Group ``renders``: reference renders (textured, the rendering-based baseline and GST's views)
and control renders (PNCC conditions for the generator), both from the pose bank."""

import time
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
    render_samples,
    write_manifest,
    write_samples,
)
from dreamer_core.datasets.reference_plan import (
    KINDS,
    Part,
    commit_record,
    part_of,
    plan,
    planned_keys,
    read_plan_file,
    read_record,
    record_file,
    record_matches,
    views_per_subject,
    write_plan,
)
from dreamer_core.datasets.shards import Sample, read_entry, remove_shards, shard_name
from dreamer_core.errors import PipelineInputError
from dreamer_core.images import coco_keypoints
from dreamer_core.io import write_json_atomic
from dreamer_core.poses.bank import PoseBank, read_pose_bank
from dreamer_core.poses.splits import SPLITS
from dreamer_core.threads import fixed_threads
from dreamer_core.viz import sample_grid_png
from orchestration.assets.common import asset_step, dvc_meta, file_hash, publish_png, settings_hash
from orchestration.assets.shard_checks import shard_partition_check
from orchestration.assets.tracked import AssetRun
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource
from orchestration.settings import SETTINGS, ControlRendersConfig, ReferenceRendersConfig

# One partition per shard of each split (reference_plan): a backfill renders them in parallel.
REFERENCE_PARTITIONS = dg.StaticPartitionsDefinition([p.key for p in plan(SETTINGS.reference_renders)])
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
    partitions_def=REFERENCE_PARTITIONS,
    kinds={"python", "warp"},
    pool="gpu",  # Warp ray casting runs on the run's device
    metadata=dvc_meta(params=["seed", "body_model", "render", "reference_renders"]),
    description="Per shard: textured, lit renders of posed bodies over procedural backgrounds with exact labels: "
    "train / val / test (the pose bank's split of pose ids) / multiview (calibrated rings of whole subjects; "
    "held-out subjects are test poses). Readers wait for every partition (reference_plan.reference_version).",
)
@asset_step
@fixed_threads()  # a shard's bytes must not depend on the process's torch thread count (body model included)
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
    part = part_of(ref, context.partition_key)
    bank = read_pose_bank(storage.asset_dir("pose_bank"))
    out = storage.asset_dir("reference_renders")
    pools = _split_pools(bank, ref)
    inputs, params = {"pose_bank": file_hash(storage, "pose_bank", "summary.json")}, {**settings, "seed": config.seed}
    rendered_with = settings_hash({"params": params, "inputs": inputs})  # every committed partition shares it
    _clear_stale(out, ref, part, rendered_with)
    body, renderer = body_model.load_with_renderer(config.torch_device())
    with AssetRun(context, mlflow, dvc, params, inputs) as tracked:
        report, t0 = BuildReport(), time.perf_counter()
        render = _multiview_part if part.split == "multiview" else _split_part
        rows, picks = render(context, body, renderer, bank, pools, rs, ref, config.seed, report, out, part)
        if not rows:
            raise dg.Failure(f"{part.key}: every camera draw failed ({dict(report.skipped)}); check render settings")
        write_manifest(out / f"manifest-{part.key}.parquet", rows)
        seconds = time.perf_counter() - t0
        png = _preview(picks, n=ref.views_per_ring if part.split == "multiview" else 6)
        publish_png(out, f"preview-{part.key}.png", png, tracked.run)
        sha = read_entry(out / part.split, shard_name(part.shard))["sha256"]
        record = commit_record(part, len(rows), sha, dict(report.skipped), rendered_with)
        write_json_atomic(out / record_file(part.key), record)  # last: the partition is committed
        tracked.run.log_metrics({"num_samples": len(rows), "samples_per_second": len(rows) / max(seconds, 1e-9),
                                 "skipped_camera_draws": sum(report.skipped.values())})  # fmt: skip
        context.log.info(f"{part.key}: {len(rows)} samples in {seconds:.1f} s; skipped {dict(report.skipped)}")
        caption = "multiview: one ring" if part.split == "multiview" else f"{part.split}: image | control | mask"
        return tracked.result(out / part.shard_file, (png, caption), split=part.split, num_samples=len(rows),
                              skipped=dg.MetadataValue.json(dict(report.skipped)),
                              seconds=round(seconds, 1))  # fmt: skip


def _clear_stale(out: Path, ref: ReferenceRendersSettings, part: Part, rendered_with: str) -> None:
    """Before a partition renders: its commit record goes first (a killed run leaves none to vouch
    for a half-written partition); the plan and what it renders with are recorded; files of
    partitions outside the plan (a larger earlier config, or the one-run layout before partitions)
    are removed, so no reader counts them as data. Other planned partitions' files are never
    touched: those rendered with other settings stay until rerun, and ``reference_version`` names
    them as stale meanwhile. Partitions run concurrently, so a file another run removed first is
    not an error."""
    (out / record_file(part.key)).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    write_plan(out, ref, rendered_with)
    planned = plan(ref)
    for split in KINDS:
        remove_shards(out / split, keep={shard_name(p.shard).removesuffix(".tar") for p in planned if p.split == split})
    keys = {p.key for p in planned}
    for pattern, prefix, suffix in (("manifest-*.parquet", "manifest-", ".parquet"), ("part-*.json", "part-", ".json"),
                                    ("preview-*.png", "preview-", ".png")):  # fmt: skip
        for path in out.glob(pattern):
            if path.name.removeprefix(prefix).removesuffix(suffix) not in keys:
                path.unlink(missing_ok=True)
    for legacy in ("manifest.parquet", "summary.json", *(f"preview_{k}.png" for k in KINDS)):
        (out / legacy).unlink(missing_ok=True)


def _split_pools(bank: PoseBank, ref: ReferenceRendersSettings) -> dict[str, np.ndarray]:
    """The pose bank's rows per split (made once by the bank, read everywhere), checked for size."""
    pools = {split: bank.rows(split) for split in SPLITS}
    short = len(pools["train"]) < ref.multiview_subjects - ref.multiview_heldout
    if min(len(p) for p in pools.values()) == 0 or len(pools["test"]) < ref.multiview_heldout or short:
        raise dg.Failure(f"pose bank of {len(bank)} poses is too small for its train/val/test split "
                         f"({ {k: len(v) for k, v in pools.items()} }); grow pose_bank")  # fmt: skip
    return pools


def _split_part(context: dg.AssetExecutionContext, body: Any, renderer: Any, bank: PoseBank,
                pools: dict[str, np.ndarray], rs: RenderSettings, ref: ReferenceRendersSettings, seed: int,
                report: BuildReport, out: Path, part: Part) -> tuple[list[dict[str, Any]], list[Sample]]:  # fmt: skip
    """One shard of a train / val / test split: the planned samples start ... stop - 1, each the
    sample a single run over the whole split would render at that place (pose, camera, key)."""
    pool, planned = pools[part.split], np.arange(part.start, part.stop)
    context.log.info(f"rendering {part.key}: samples {part.start}..{part.stop - 1} from {len(pool)} poses")
    samples = iter_samples(body, renderer, bank, pool[planned % len(pool)], rs, seed, f"reference-{part.split}",
                           part.split, True, report, part.key, first=part.start)  # fmt: skip
    picks, writer = _Picks(len(planned)), ShardWriter(out / part.split, len(planned), part.split, part.shard)
    for sample in samples:
        writer.add(picks.see(sample))
    return writer.close(), picks.samples


def _multiview_part(context: dg.AssetExecutionContext, body: Any, renderer: Any, bank: PoseBank,
                    pools: dict[str, np.ndarray], rs: RenderSettings, ref: ReferenceRendersSettings, seed: int,
                    report: BuildReport, out: Path, part: Part,
                    ) -> tuple[list[dict[str, Any]], list[Sample]]:  # fmt: skip
    """Calibrated camera rings around the subjects start ... stop - 1: training subjects first
    (training poses), then the held-out ones (test poses); a shard holds whole subjects."""
    n_sub, n_held = ref.multiview_subjects, ref.multiview_heldout
    subjects = np.concatenate([pools["train"][: n_sub - n_held], pools["test"][:n_held]])
    heldout = np.arange(len(subjects)) >= n_sub - n_held
    ids = np.arange(part.start, part.stop)
    context.log.info(f"rendering {part.key}: subjects {part.start}..{part.stop - 1} x {views_per_subject(ref)} views")
    views = iter_multiview(body, renderer, bank, subjects[ids], heldout[ids], rs, ref.views_per_ring,
                           ref.elevations_deg, ref.multiview_radius, seed, report, first=part.start)  # fmt: skip
    first_ring: list[Sample] = []
    writer = ShardWriter(out / "multiview", len(ids) * views_per_subject(ref), "multiview", part.shard)
    for sample, extra in views:
        if len(first_ring) < ref.views_per_ring:
            first_ring.append(sample)
        writer.add(sample, extra)
    return writer.close(), first_ring


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


@dg.asset(
    group_name="renders",
    deps=["pose_bank"],
    partitions_def=CONTROL_PARTITIONS,
    kinds={"python", "warp"},
    pool="gpu",  # Warp ray casting runs on the run's device
    metadata=dvc_meta(params=["seed", "body_model", "render", "control_renders"]),
    description="Per shard: one PNCC control image (+ mask, depth, labels) per pose-bank row and camera draw.",
)
@asset_step
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


@dg.asset_check(asset=reference_renders, partitions_def=REFERENCE_PARTITIONS,
                description="This partition's shard reads back with its hash and holds exactly the keys of its "
                "index entry and manifest part; its commit record names that hash; visible keypoints lie on the "
                "body mask; train / val / test samples hold their split's poses, multi-view training subjects "
                "training poses and held-out subjects test poses. Reads this partition's files only.")  # fmt: skip
def reference_renders_valid(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    return check_reference_partition(storage, context.partition_key)


def check_reference_partition(storage: StorageResource, key: str) -> dg.AssetCheckResult:
    """``reference_renders_valid`` for partition ``key``; reads that partition's files only."""
    split, shard = key.rsplit("-", 1)
    out = storage.asset_dir("reference_renders")

    def measure(samples: Iterable[Sample]) -> tuple[dict[str, Any], bool]:
        fraction = _validate_samples(samples)[1]
        state = _commit_state(out, key)
        return {"keypoints_on_mask": fraction, **state}, fraction >= 0.97 and all(state.values())

    first_heldout = _first_heldout(out)
    return shard_partition_check(storage, "reference_renders", key, measure, shard_file=f"{split}/shard-{shard}.tar",
                                 pose_split=lambda s: _pose_split(split, s, first_heldout))  # fmt: skip


def _commit_state(out: Path, key: str) -> dict[str, bool]:
    """Whether the partition's commit record names its shard's hash and count (``committed``),
    matches the recorded plan's range and what the plan renders with (``matches_plan``), and its
    shard holds the plan's keys for that range, in order, dropped samples aside (``planned_keys``);
    multi-view subjects past ``multiview_subjects - multiview_heldout`` are the held-out ones."""
    try:
        head = read_plan_file(out)
        part = next(p for p in head["partitions"] if p.key == key)
        record = read_record(out, key) or {}
        entry = read_entry(out / part.split, shard_name(part.shard))
    except (OSError, ValueError, StopIteration, PipelineInputError):
        return {"committed": False, "matches_plan": False, "planned_keys": False}
    ref = head["settings"]
    views = ref["views_per_ring"] * len(ref["elevations_deg"])
    keys, planned = list(entry["keys"]), planned_keys(part, views)
    in_order = [k for k in planned if k in set(keys)] == keys
    return {
        "committed": record.get("sha256") == entry["sha256"] and record.get("num_samples") == len(keys),
        "matches_plan": record_matches(record, part, head["rendered_with"]),
        "planned_keys": in_order and (part.split != "multiview" or keys == planned),
    }


def _first_heldout(out: Path) -> int:
    """The first held-out multi-view subject under the recorded plan (0 when it cannot be read:
    the commit state then fails the check anyway)."""
    try:
        ref = read_plan_file(out)["settings"]
        return int(ref["multiview_subjects"]) - int(ref["multiview_heldout"])
    except (PipelineInputError, KeyError, TypeError, ValueError):
        return 0


def _pose_split(split: str, sample: Sample, first_heldout: int) -> str:
    """The split a sample's pose must come from: its own split; in the multi-view rings, training
    subjects' train poses and held-out subjects' test poses, where a subject is held out exactly
    when its index is ``first_heldout`` or more (a flag that disagrees fails as "flag")."""
    if split != "multiview":
        return split
    heldout = bool(sample.labels.get("heldout"))
    if heldout != (int(sample.labels.get("subject", -1)) >= first_heldout):
        return "flag"
    return "test" if heldout else "train"


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
