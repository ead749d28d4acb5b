"""``filtered_dataset``: every finished shard of both rounds through the filter stages; the kept
samples as shards, a manifest of every generated sample (kept and rejected, with each stage's
decision, score and reason), a dataset card, and a BEDLAM-style export for SMPL / SMPL-X."""

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from dreamer_core.config import FilterSettings
from dreamer_core.datasets.build import write_manifest
from dreamer_core.datasets.shards import (
    Sample,
    index_keys,
    publish_shard,
    read_index,
    read_shard,
    remove_shards,
    shard_name,
)
from dreamer_core.errors import PipelineInputError
from dreamer_core.filters.bedlam import bedlam_arrays
from dreamer_core.filters.card import bar_png, dataset_card, histogram_png
from dreamer_core.filters.stages import STAGES, decide, score_images, stage_counts
from dreamer_core.fingerprint import weights_fingerprint
from dreamer_core.images import stack_coco_keypoints
from dreamer_core.io import (
    publish_folder,
    staging_folder,
    write_bytes_atomic,
    write_json_atomic,
    write_npz_atomic,
    write_text_atomic,
)
from dreamer_core.keypoints.detectors import load_detector
from dreamer_core.mining.hardness import read_draw_scores
from dreamer_core.poses.bank import read_pose_bank
from dreamer_core.viz import sample_grid_png
from orchestration.assets.common import (
    asset_step,
    dvc_meta,
    publish_png,
    write_parquet,
)
from orchestration.assets.mining import (
    ROUND_PARTITIONS,
    committed_shards,
    round_asset_name,
    round_manifest,
)
from orchestration.assets.tracked import AssetRun
from orchestration.resources import BodyModelResource, DVCResource, MLflowResource, StorageResource
from orchestration.settings import FilteredDatasetConfig

SCORE_VERSION = 2  # bump when score_images changes, so cached per-shard scores are recomputed


def _cache_file(folder: Path, raw: Path) -> Path:
    return folder / f"{raw.parent.name}-{raw.stem}.parquet"


def _cached_scores(folder: Path, raw: Path, digest: str, detector_hash: str, min_area: float,
                   detector: Any) -> pd.DataFrame:  # fmt: skip
    """Scores of one raw shard, reused while the shard, the detector and the person-area setting
    are unchanged: a rerun after a kill (or after new shards arrive) scores only what is new."""
    stamp = hashlib.sha256(f"{digest}/{detector_hash}/{min_area}/{SCORE_VERSION}".encode()).hexdigest()[:16]
    path = _cache_file(folder, raw)
    if path.exists():
        cached = pd.read_parquet(path)
        if "stamp" in cached and len(cached) and cached.stamp.iloc[0] == stamp:
            return cached.drop(columns="stamp")
    samples = list(read_shard(raw, digest))
    images = np.stack([s.image for s in samples])
    kp = stack_coco_keypoints(samples)
    masks = np.stack([s.mask for s in samples])
    scores = score_images(detector, images, kp, masks, min_area)
    scores.insert(0, "key", [s.key for s in samples])
    write_parquet(path, scores.assign(stamp=stamp))
    return scores


@dg.asset(
    group_name="dataset",
    deps=["round1_generations", "round2_generations", "hardness_model", "pose_detector"],
    kinds={"pytorch", "parquet"},
    pool="gpu",  # the detector scores every candidate on the run's device
    metadata=dvc_meta(params=["seed", "filtered_dataset"]),  # fmt: skip
    description="The dataset: every finished round-1 and round-2 shard through four filter stages (crowding / "
    "empty, pose OKS, image quality, near-duplicates); kept samples as shards, manifest.parquet with every "
    "sample's per-stage decision, score and reason, a dataset card, and a BEDLAM .npz for SMPL / SMPL-X.",
)
@asset_step
def filtered_dataset(
    context: dg.AssetExecutionContext,
    config: FilteredDatasetConfig,
    body_model: BodyModelResource,
    storage: StorageResource,
    mlflow: MLflowResource,
    dvc: DVCResource,
) -> dg.MaterializeResult:
    settings = config.settings()["filtered_dataset"]
    out = storage.asset_dir("filtered_dataset")
    sources = _finished_shards(context, storage)
    params = {"filtered_dataset": settings, "seed": config.seed, "shards": [f"r{r}/{s}" for r, s, _, _ in sources]}
    with AssetRun(context, mlflow, dvc, params) as tracked:
        t0 = time.perf_counter()
        stage = staging_folder(out, carry=("scores",))  # built beside, swapped in as one unit: never a mix
        scores = _scores(context, storage, sources, stage / "scores", settings.min_person_area, config.torch_device())
        decisions = decide(scores, scores.key.tolist(), settings)
        manifest = pd.concat([scores.drop(columns=["phash"]), decisions.drop(columns="key")], axis=1)
        manifest["phash"] = scores.phash.to_numpy().view(np.uint64).astype(str)  # 64 bits, readable anywhere
        filter_seconds = time.perf_counter() - t0
        kept_keys = set(manifest.key[manifest.decision == "kept"])
        out_shard, kept_labels, previews = _write_kept(stage, sources, kept_keys, settings.samples_per_shard,
                                                       manifest.set_index("key"))  # fmt: skip
        manifest["out_shard"] = manifest.key.map(out_shard).fillna("")
        write_manifest(stage / "manifest.parquet", manifest.to_dict("records"))
        counts = stage_counts(decisions)
        if str(manifest.body_model.iloc[0]) in ("smpl", "smplx") and kept_labels:
            _export_bedlam(stage, body_model, kept_labels)
        summary = _summary(manifest, counts)
        write_json_atomic(stage / "summary.json", summary)
        write_json_atomic(stage / "thresholds.json", settings.to_dict())  # what the checks hold the kept samples to
        _publish_card(stage, storage, manifest, counts, settings, tracked.run)
        png = sample_grid_png(previews) if previews else b""
        if png:
            publish_png(stage, "preview.png", png, tracked.run)
        publish_folder(stage, out)
        tracked.run.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)})
        sm = summary
        context.log.info(f"filtered dataset: kept {sm['num_kept']} of {sm['num_raw']}; per stage {counts}; round OKS "
                         f"{sm['round1_mean_oks']:.3f} / {sm['round2_mean_oks']:.3f}, predicted "
                         f"{sm['round1_mean_predicted_oks']:.3f} / {sm['round2_mean_predicted_oks']:.3f}")  # fmt: skip
        return tracked.result(
            out, (png, "kept: image | control; rejected: image | control") if png else None, **summary,
            stage_counts=dg.MetadataValue.json(counts), filter_seconds=round(filter_seconds, 2),
            dataset_card=dg.MetadataValue.path(str(out / "README.md")),
        )  # fmt: skip


Source = tuple[int, str, Path, str]  # (round, shard, path, sha256)


def _finished_shards(context: dg.AssetExecutionContext, storage: StorageResource) -> list[Source]:
    """Every finished shard of both rounds whose partition still exists, in (round, shard) order."""
    sources: list[Source] = []
    for r, pdef in ROUND_PARTITIONS.items():
        asset = round_asset_name(r)
        shards = committed_shards(storage, asset, context.instance.get_dynamic_partitions(pdef.name))
        index = read_index(storage.asset_dir(asset)) if shards else {}
        sources += [(r, s, storage.asset_dir(asset) / f"{s}.tar", index[f"{s}.tar"]["sha256"]) for s in shards]
    if not sources:
        raise dg.Failure("no finished generation shards; materialize round1_generations / round2_generations first")
    return sources


def _scores(context: dg.AssetExecutionContext, storage: StorageResource, sources: list[Source], cache: Path,
            min_person_area: float, device: Any) -> pd.DataFrame:  # fmt: skip
    """Every sample's filter scores (cached per shard), joined with its round manifest row and the
    hardness model's published draw score; fails on samples of another pose bank or split. The
    detector scores on ``device``."""
    cache.mkdir(exist_ok=True)
    detector = load_detector(storage.asset_dir("pose_detector"), device)
    detector_hash = weights_fingerprint(storage.asset_dir("pose_detector"))  # the weights, not their metrics
    parts = []
    for i, (r, shard, path, digest) in enumerate(sources):
        parts.append(_cached_scores(cache, path, digest, detector_hash, min_person_area, detector))
        context.log.info(f"scored {i + 1}/{len(sources)} shards (round {r} {shard})")
    partitions = {cache / f"{round_asset_name(r)}-{s}.parquet" for r, pdef in ROUND_PARTITIONS.items()
                  for s in context.instance.get_dynamic_partitions(pdef.name)}  # fmt: skip
    for stale in set(cache.glob("*.parquet")) - partitions:
        stale.unlink()  # scores of removed partitions are not carried on (a shard being rewritten keeps its own)
    scores = pd.concat(parts, ignore_index=True)
    raw = pd.concat([round_manifest(storage, round_asset_name(r), [s]) for r, s, _, _ in sources], ignore_index=True)
    raw = raw.drop(columns=["oks"]).rename(columns={"shard": "raw_shard"})
    scores = scores.merge(raw, on="key", how="left", validate="one_to_one").sort_values("key", ignore_index=True)
    bank = read_pose_bank(storage.asset_dir("pose_bank"))
    row_of = {p: i for i, p in enumerate(bank.arrays["pose_id"])}
    unknown = sorted(set(scores.pose_id) - set(row_of))
    if unknown or scores.body_model.nunique() != 1:
        raise dg.Failure(
            f"the generation shards do not match the current pose bank ({len(unknown)} unknown poses, body "
            f"models {sorted(scores.body_model.unique())}): re-materialize the rounds after changing pose_bank "
            "or body_model (or delete the old shard partitions)"
        )
    if leaked := bank.not_in_split(scores.pose_id):
        raise dg.Failure(f"{len(leaked)} generated poses (e.g. {leaked[0]}) are validation or test poses (shards "
                         "of an older split): re-materialize the rounds")  # fmt: skip
    # The published draw scores: out-of-fold for round-1 poses, so no pose is scored by a model that saw it.
    predicted, _ = read_draw_scores(storage.asset_dir("hardness_model"), bank.arrays["pose_id"])
    scores["predicted_oks"] = predicted[[row_of[p] for p in scores.pose_id]]
    return scores


def _publish_card(out: Path, storage: StorageResource, manifest: pd.DataFrame, counts: dict[str, dict[str, int]],
                  settings: FilterSettings, run: Any) -> None:  # fmt: skip
    """The dataset card (README.md) with its figures, logged to the run."""
    gen_cfg = json.loads((storage.asset_dir("generator") / "config.json").read_text())
    backend = "tiny" if gen_cfg.get("class") == "TinyGenerator" else str(gen_cfg.get("backend", "pretrained"))
    images = _card_images(out, manifest)
    body_name = str(manifest.body_model.iloc[0])
    write_text_atomic(out / "README.md", dataset_card(manifest, counts, settings, body_name, backend, images))
    for name in images.values():
        run.log_artifact(out / name, "card")
    run.log_artifact(out / "README.md", "card")


Written = tuple[dict[str, str], list[dict[str, Any]], list[list[np.ndarray]]]


def _write_kept(out: Path, sources: list[tuple[int, str, Path, str]], kept: set[str], per_shard: int,
                manifest: pd.DataFrame) -> Written:  # fmt: skip
    """Stream raw shards in (round, shard) order and write kept samples into output shards of
    ``per_shard``; return key -> output shard, the kept labels (for exports) and preview rows."""
    out_shard: dict[str, str] = {}
    labels: list[dict[str, Any]] = []
    kept_rows: list[list[np.ndarray]] = []
    rejected_rows: list[list[np.ndarray]] = []
    buffer: list[Sample] = []
    written: list[str] = []

    def flush() -> None:
        name = shard_name(len(written))
        publish_shard(out, name, buffer)
        for s in buffer:
            out_shard[s.key] = name
        written.append(name.removesuffix(".tar"))
        buffer.clear()

    for _, _, path, digest in sources:
        for s in read_shard(path, digest):
            if s.key not in kept:
                if len(rejected_rows) < 3:
                    rejected_rows.append([s.image, s.control])
                continue
            row = manifest.loc[s.key]
            s.labels["filter"] = {"oks": float(row.oks), "people": int(row.people),
                                  "predicted_oks": float(row.predicted_oks)}  # fmt: skip
            buffer.append(s)
            labels.append({**s.labels, "imgname": f"{s.key}.png"})
            if len(kept_rows) < 3:
                kept_rows.append([s.image, s.control])
            if len(buffer) == per_shard:
                flush()
    if buffer:
        flush()
    remove_shards(out, keep=set(written))  # shards of an earlier, larger result
    return out_shard, labels, kept_rows + rejected_rows


def _export_bedlam(out: Path, body_model: BodyModelResource, labels: list[dict[str, Any]]) -> None:
    import torch

    body = body_model.load()
    shape = torch.tensor(np.array([lab["params"]["shape"] for lab in labels]), dtype=torch.float32)
    pelvis = body.native_pelvis(shape).numpy()
    write_npz_atomic(out / "bedlam_labels.npz", bedlam_arrays(labels, [lab["imgname"] for lab in labels], pelvis))


def _card_images(out: Path, manifest: pd.DataFrame) -> dict[str, str]:
    kept = manifest[manifest.decision == "kept"]
    oks_groups = {f"round {r} (raw)": manifest.oks[manifest["round"] == r].to_numpy() for r in (1, 2)}
    oks_groups["kept"] = kept.oks.to_numpy()
    files = {
        "OKS before and after filtering": ("oks_histogram.png", histogram_png(
            oks_groups, np.linspace(0, 1, 26), "OKS of the detector against the label", "pose alignment")),
        "predicted OKS (hardness model) per round": ("predicted_oks_histogram.png", histogram_png(
            {f"round {r}": manifest.predicted_oks[manifest["round"] == r].to_numpy() for r in (1, 2)},
            np.linspace(0, 1, 26), "predicted OKS", "hardness of the drawn poses")),
        "pose families, generated vs kept": ("pose_families.png", bar_png(pd.DataFrame({
            "generated": manifest.family.value_counts(), "kept": kept.family.value_counts()}).fillna(0),
            "pose families")),
    }  # fmt: skip
    for name, data in files.values():
        write_bytes_atomic(out / name, data)
    return {caption: name for caption, (name, _) in files.items()}


def _summary(manifest: pd.DataFrame, counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    def mean(col: str, r: int) -> float:
        v = manifest.loc[manifest["round"] == r, col]
        return float(v.mean()) if len(v) else float("nan")

    return {
        "num_raw": len(manifest),
        "num_kept": int((manifest.decision == "kept").sum()),
        "num_rejected": int((manifest.decision == "rejected").sum()),
        **{f"rejected_{s}": counts[s]["rejected"] for s in STAGES},
        "round1_num_raw": int((manifest["round"] == 1).sum()),
        "round2_num_raw": int((manifest["round"] == 2).sum()),
        "round1_mean_oks": mean("oks", 1),
        "round2_mean_oks": mean("oks", 2),
        "round1_mean_predicted_oks": mean("predicted_oks", 1),
        "round2_mean_predicted_oks": mean("predicted_oks", 2),
        "kept_mean_oks": float(manifest.oks[manifest.decision == "kept"].mean()),
    }


def _kept_meets_thresholds(m: pd.DataFrame, f: FilterSettings) -> pd.Series:
    return (
        (m.people >= 1) & (m.people <= f.max_people) & (m.keypoint_score >= f.min_keypoint_score)
        & (m.oks >= f.min_oks) & (m.contrast >= f.min_std) & (m.saturated <= f.max_saturated)
        & (m.sharpness >= f.min_sharpness) & (m.near_duplicate_score > f.max_hash_distance)
        & (m[[f"{s}_decision" for s in STAGES]] == "pass").all(axis=1)
    )  # fmt: skip


def _shard_keys(folder: Path) -> list[str]:
    """Every key the folder's shards hold, from their indexes, each shard file there with the size
    its index records (no shard is read)."""
    if not any(folder.glob("*.index.json")):
        return []
    return [k for keys in index_keys(folder).values() for k in keys]


def _broken(exc: PipelineInputError) -> dg.AssetCheckResult:
    """A missing, truncated or unindexed shard fails the check with the reason (not a check error)."""
    return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})


def _manifest(storage: StorageResource) -> pd.DataFrame:
    return pd.read_parquet(storage.asset_dir("filtered_dataset") / "manifest.parquet")


# Dataset-level checks read the manifest and the shard indexes (each shard's hash, count and keys),
# never an image (each listed shard must exist with the size its index records: a stat, not a read),
# so at the full profile's 500 shards they cost little more than at 8. A shard rewritten in place to
# the same size is caught by the SHA-256 check of whoever opens it (training streams, exports).
@dg.asset_check(asset=filtered_dataset, description="Every kept sample meets every stage's threshold (the "
                "thresholds of the materialization); the kept shards' indexes list exactly "
                "the kept keys.")  # fmt: skip
def filtered_kept_meet_thresholds(storage: StorageResource) -> dg.AssetCheckResult:
    out = storage.asset_dir("filtered_dataset")
    manifest = _manifest(storage)
    f = FilterSettings.from_mapping(json.loads((out / "thresholds.json").read_text()), "thresholds.json: ")
    kept = manifest[manifest.decision == "kept"]
    bad = kept[~_kept_meets_thresholds(kept, f)]
    try:
        shard_keys = _shard_keys(out)
    except PipelineInputError as exc:
        return _broken(exc)
    return dg.AssetCheckResult(
        passed=bad.empty and sorted(shard_keys) == sorted(kept.key),
        metadata={"kept": len(kept), "violations": len(bad), "samples_in_shards": len(shard_keys)},
    )


@dg.asset_check(asset=filtered_dataset, description="Nothing lost: kept + rejected equals every sample of the "
                "generation shards the dataset was built from (their indexes' keys).")  # fmt: skip
def filtered_nothing_lost(storage: StorageResource) -> dg.AssetCheckResult:
    manifest = _manifest(storage)
    raw: list[str] = []
    for r in ROUND_PARTITIONS:
        asset = storage.asset_dir(round_asset_name(r))
        shards = {f"{shard}.tar" for shard in manifest.raw_shard[manifest["round"] == r]}
        try:
            index = {name: entry for name, entry in read_index(asset).items() if name in shards} if shards else {}
            raw += [k for keys in index_keys(asset, index).values() for k in keys]
        except PipelineInputError as exc:
            return _broken(exc)
    kept, rejected = int((manifest.decision == "kept").sum()), int((manifest.decision == "rejected").sum())
    return dg.AssetCheckResult(
        passed=kept + rejected == len(raw) == len(manifest) and set(manifest.key) == set(raw),
        metadata={"kept": kept, "rejected": rejected, "raw": len(raw)},
    )


@dg.asset_check(asset=filtered_dataset, description="No sample key appears twice (manifest and kept shards' indexes).")
def filtered_unique_keys(storage: StorageResource) -> dg.AssetCheckResult:
    manifest = _manifest(storage)
    try:
        shard_keys = _shard_keys(storage.asset_dir("filtered_dataset"))
    except PipelineInputError as exc:
        return _broken(exc)
    dup_manifest = int(manifest.key.duplicated().sum())
    dup_shards = len(shard_keys) - len(set(shard_keys))
    return dg.AssetCheckResult(
        passed=dup_manifest == 0 and dup_shards == 0,
        metadata={"duplicate_manifest_keys": dup_manifest, "duplicate_shard_keys": dup_shards},
    )


CHECKS = [filtered_kept_meet_thresholds, filtered_nothing_lost, filtered_unique_keys]
